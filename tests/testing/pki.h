// A throwaway certificate authority for tests: certificates issued on demand
// in a test's directory, and the transports that use them.
#ifndef BPO_TESTS_TESTING_PKI_H_
#define BPO_TESTS_TESTING_PKI_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/identity.h"
#include "common/transport.h"

namespace bpo::testing {

class TestPki {
 public:
  // Creates the CA in `dir` (which must not hold one).
  static absl::StatusOr<TestPki> Create(const std::string& dir);

  // Issues (or re-issues) a certificate for role:name and returns the
  // transport that presents it.
  absl::StatusOr<TransportSecurity> Transport(Role role, const std::string& name) const;
  // A client that trusts the CA and presents `token` instead of a certificate.
  TransportSecurity TokenClient(const std::string& token) const;

  const std::string& dir() const { return dir_; }
  const std::string& ca_pem() const { return ca_pem_; }

 private:
  std::string dir_;
  std::string ca_pem_;
};

}  // namespace bpo::testing

#endif  // BPO_TESTS_TESTING_PKI_H_
