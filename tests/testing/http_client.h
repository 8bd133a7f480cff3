// A minimal blocking HTTP/1.0 client for tests (GET and POST over loopback).
#ifndef BPO_TESTS_TESTING_HTTP_CLIENT_H_
#define BPO_TESTS_TESTING_HTTP_CLIENT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace bpo::testing {

struct HttpResult {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// `headers` are sent as given, after Host, Content-Type and Content-Length.
absl::StatusOr<HttpResult> HttpRequest(const std::string& host, int port, const std::string& method,
                                       const std::string& target, const std::string& body = "",
                                       absl::Duration timeout = absl::Seconds(10),
                                       const std::map<std::string, std::string>& headers = {});

inline absl::StatusOr<HttpResult> HttpGet(const std::string& host, int port,
                                          const std::string& target,
                                          absl::Duration timeout = absl::Seconds(10)) {
  return HttpRequest(host, port, "GET", target, "", timeout);
}

// Percent-encodes a query parameter value.
std::string UrlEncode(const std::string& value);

}  // namespace bpo::testing

#endif  // BPO_TESTS_TESTING_HTTP_CLIENT_H_
