#include "tests/testing/pki.h"

#include "absl/strings/str_cat.h"
#include "common/certs.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace bpo::testing {

absl::StatusOr<TestPki> TestPki::Create(const std::string& dir) {
  BPO_RETURN_IF_ERROR(CreateCertificateAuthority(dir, "test"));
  TestPki pki;
  pki.dir_ = dir;
  BPO_ASSIGN_OR_RETURN(pki.ca_pem_, ReadWholeFile(absl::StrCat(dir, "/ca.pem")));
  return pki;
}

absl::StatusOr<TransportSecurity> TestPki::Transport(Role role, const std::string& name) const {
  const Identity id{role, name};
  BPO_RETURN_IF_ERROR(IssueCertificate(dir_, id));
  TransportSecurity t;
  t.ca_pem = ca_pem_;
  BPO_ASSIGN_OR_RETURN(t.cert_pem, ReadWholeFile(absl::StrCat(dir_, "/", name, ".pem")));
  BPO_ASSIGN_OR_RETURN(t.key_pem, ReadWholeFile(absl::StrCat(dir_, "/", name, ".key")));
  t.identity = id;
  return t;
}

TransportSecurity TestPki::TokenClient(const std::string& token) const {
  TransportSecurity t;
  t.ca_pem = ca_pem_;
  t.bearer_token = token;
  return t;
}

}  // namespace bpo::testing
