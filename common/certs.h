// The run's certificate authority and the certificates it issues, made with
// OpenSSL's libcrypto (what `bpo certs` and `bpo local` use).
//
// Layout of a certificates directory:
//   ca.pem, ca.key           the run CA (P-256, self-signed); ca.key is 0600
//   <name>.pem, <name>.key   one process's certificate and key
// A process certificate's subject common name is "<role>:<name>"; its
// subject alternative names are DNS "<role>.bpo" (what bpo clients check
// when they dial a peer of that role), "bpo" (any process of the run, for
// /metrics scrapes), "localhost", 127.0.0.1, ::1 and any extra hosts.
#ifndef BPO_COMMON_CERTS_H_
#define BPO_COMMON_CERTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/identity.h"

namespace bpo {

struct CertificateOptions {
  int valid_days = 365;
  // Extra host names or IP addresses for the subject alternative names.
  std::vector<std::string> hosts;
};

// Writes dir/ca.pem and dir/ca.key (creating dir, mode 0700), naming `run_id`
// in the CA's subject. ALREADY_EXISTS when dir/ca.pem exists.
absl::Status CreateCertificateAuthority(const std::string& dir, const std::string& run_id,
                                        int valid_days = 3650);

// Issues dir/<name>.pem and dir/<name>.key for `identity`, signed by dir's CA.
// Overwrites an earlier certificate of the same name (rotation).
absl::Status IssueCertificate(const std::string& dir, const Identity& identity,
                              const CertificateOptions& options = {});

// For `bpo local`: creates the CA if dir has none, and issues a certificate
// for each identity that has none yet (or whose certificate expires within a
// day or was not issued by dir's CA).
absl::Status EnsureCertificates(const std::string& dir, const std::string& run_id,
                                const std::vector<Identity>& identities);

// The identity in a PEM certificate's common name.
absl::StatusOr<Identity> CertificateIdentity(const std::string& cert_pem);

// OK when `cert_pem` is signed by `ca_pem`, is valid now and `key_pem` is its
// private key; FAILED_PRECONDITION says which check failed.
absl::Status CheckCertificate(const std::string& ca_pem, const std::string& cert_pem,
                              const std::string& key_pem);

// A new bearer token for `identity` (256 random bits, hex): appends
// "<role>:<name> sha256:<hex>" to `tokens_file` (created 0600) and returns the
// token, which is stored nowhere. ALREADY_EXISTS when the identity has one.
absl::StatusOr<std::string> CreateBearerToken(const std::string& tokens_file,
                                              const Identity& identity);

}  // namespace bpo

#endif  // BPO_COMMON_CERTS_H_
