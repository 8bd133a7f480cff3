// How one process connects and is connected to: TLS material from the run's
// certificate directory (common/certs.h), the identity its certificate
// carries, the bearer tokens it accepts, or an explicit plaintext transport
// (security.plaintext, loopback only). common/rpc.h and common/http_server.h
// turn it into gRPC credentials and HTTPS.
#ifndef BPO_COMMON_TRANSPORT_H_
#define BPO_COMMON_TRANSPORT_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bpo/v1/config.pb.h"
#include "common/identity.h"

namespace bpo {

struct TransportSecurity {
  // No TLS; every peer is Role::kPlaintext. Only on loopback.
  bool plaintext = false;
  std::string ca_pem;    // trust root: the run's CA
  std::string cert_pem;  // this process's certificate; empty for a token client
  std::string key_pem;
  std::optional<Identity> identity;  // from cert_pem
  // Client without a certificate: sent as "authorization: Bearer <token>".
  std::string bearer_token;
  // Server: accepted bearer tokens, by the sha256 (hex) of the token.
  std::map<std::string, Identity> tokens;
  // /metrics requires a client certificate of the run's CA.
  bool metrics_client_certs = true;

  static TransportSecurity Plaintext();
  // "mTLS as actor:actor-0", "TLS with a bearer token", "plaintext".
  std::string Describe() const;
};

// Files that override the config (the --tls_ca, --tls_cert, --tls_key flags).
struct TransportFiles {
  std::string ca;
  std::string cert;
  std::string key;
};

// The certificate directory of a run: security.dir, else
// <output_dir>/<run_id>/certs.
absl::StatusOr<std::string> CertificateDir(const bpo::v1::RunConfig& config);

// Loads the transport of the process called `name` (its certificate is
// <dir>/<name>.pem unless the config or `files` name one). Checks that the
// certificate is the CA's, valid, and matches its key. FAILED_PRECONDITION
// names the missing or wrong file and how to make one (`bpo certs`).
absl::StatusOr<TransportSecurity> LoadTransport(const bpo::v1::RunConfig& config,
                                                absl::string_view name,
                                                const TransportFiles& files = {});

// Reads a tokens file of "<role>:<name> sha256:<hex>" lines ('#' comments and
// blank lines ignored). INVALID_ARGUMENT names file:line.
absl::StatusOr<std::map<std::string, Identity>> LoadTokens(const std::string& path);

}  // namespace bpo

#endif  // BPO_COMMON_TRANSPORT_H_
