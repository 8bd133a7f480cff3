// gRPC helpers: one place that maps absl::Status to grpc::Status and back,
// puts deadlines on client calls, connects with a clear error, and starts
// servers with a clear error when the address cannot be bound.
#ifndef BPO_COMMON_RPC_H_
#define BPO_COMMON_RPC_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace bpo {

// The canonical codes are numerically the same in both libraries.
grpc::Status ToGrpcStatus(const absl::Status& status);
// `what` names the call for the message: "Coordinator.Register at host:port".
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view what = "");

// Sets an absolute deadline `timeout` from now on a client context.
void SetDeadline(grpc::ClientContext* context, absl::Duration timeout);

// An insecure channel to `address` that is ready within `timeout`.
// UNAVAILABLE names the peer and the time waited when it is unreachable;
// INVALID_ARGUMENT when the address is malformed. `role` names the peer in
// messages ("coordinator").
absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const std::string& address,
                                                       absl::string_view role,
                                                       absl::Duration timeout);

struct GrpcServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the bound port (useful with port 0)
};

// Builds and starts a server on `address` (host:port, port 0 for any) with
// the given services, which must outlive it. UNAVAILABLE when the address
// cannot be bound (e.g. in use). Larger messages are refused with
// RESOURCE_EXHAUSTED before any handler runs.
absl::StatusOr<GrpcServer> StartGrpcServer(const std::string& address,
                                           const std::vector<grpc::Service*>& services,
                                           int max_message_bytes = 64 << 20);

}  // namespace bpo

#endif  // BPO_COMMON_RPC_H_
