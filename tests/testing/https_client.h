// A minimal blocking HTTPS GET for tests, with an optional client
// certificate, checking the server's certificate against a CA and a name.
#ifndef BPO_TESTS_TESTING_HTTPS_CLIENT_H_
#define BPO_TESTS_TESTING_HTTPS_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/transport.h"

namespace bpo::testing {

struct HttpsResult {
  int status = 0;
  std::string body;
};

// GET https://host:port<target>. The server must present a certificate of
// client.ca_pem valid for `server_name`; client.cert_pem/key_pem, when set,
// are presented. UNAVAILABLE when the TLS handshake fails.
absl::StatusOr<HttpsResult> HttpsGet(const std::string& host, int port, const std::string& target,
                                     const TransportSecurity& client,
                                     const std::string& server_name = "bpo",
                                     absl::Duration timeout = absl::Seconds(10));

}  // namespace bpo::testing

#endif  // BPO_TESTS_TESTING_HTTPS_CLIENT_H_
