// gRPC helpers: one place that maps absl::Status to grpc::Status and back,
// puts deadlines on client calls, connects with a clear error, starts
// servers with a clear error when the address cannot be bound, and turns a
// TransportSecurity into credentials and the caller's Identity.
#ifndef BPO_COMMON_RPC_H_
#define BPO_COMMON_RPC_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/identity.h"
#include "common/transport.h"

namespace bpo {

// The canonical codes are numerically the same in both libraries.
grpc::Status ToGrpcStatus(const absl::Status& status);
// `what` names the call for the message: "Coordinator.Register at host:port".
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view what = "");

// Sets an absolute deadline `timeout` from now on a client context.
void SetDeadline(grpc::ClientContext* context, absl::Duration timeout);

// A channel to `address` that is ready within `timeout`. Over TLS the peer
// must present a certificate of the run's CA issued to `peer_role` (its name
// "<role>.bpo"); this process presents its own certificate or bearer token.
// UNAVAILABLE names the peer and the time waited when it is unreachable (or
// the TLS handshake fails); INVALID_ARGUMENT when the address is malformed,
// or not loopback for a plaintext transport. `what` names the peer in
// messages ("coordinator").
absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const std::string& address,
                                                       absl::string_view what,
                                                       absl::Duration timeout,
                                                       const TransportSecurity& transport,
                                                       Role peer_role);

struct GrpcServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the bound port (useful with port 0)
};

// Builds and starts a server on `address` (host:port, port 0 for any) with
// the given services, which must outlive it. Over TLS clients must present a
// certificate of the run's CA, or (when the transport accepts tokens) may
// present a bearer token instead; handlers learn who called with
// PeerIdentity. UNAVAILABLE when the address cannot be bound (e.g. in use);
// INVALID_ARGUMENT for a plaintext transport on a non-loopback address.
// Larger messages are refused with RESOURCE_EXHAUSTED before any handler runs.
absl::StatusOr<GrpcServer> StartGrpcServer(const std::string& address,
                                           const std::vector<grpc::Service*>& services,
                                           const TransportSecurity& transport,
                                           int max_message_bytes = 64 << 20);

// The authenticated caller of a server call: the identity in its client
// certificate, else the one its bearer token maps to; Role::kPlaintext on a
// plaintext transport. UNAUTHENTICATED when it has neither.
absl::StatusOr<Identity> PeerIdentity(const grpc::ServerContextBase& context,
                                      const TransportSecurity& transport);

}  // namespace bpo

#endif  // BPO_COMMON_RPC_H_
