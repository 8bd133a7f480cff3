// host:port endpoints as written in configs and flags.
#ifndef BPO_COMMON_ENDPOINT_H_
#define BPO_COMMON_ENDPOINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bpo {

struct Endpoint {
  std::string host;  // name, IPv4, or IPv6 without brackets
  int port = 0;      // 0..65535; 0 asks the OS for a free port when serving

  // "host:port", with brackets around an IPv6 host.
  std::string ToString() const;
};

// Parses "host:port", "[v6]:port" or ":port" (host 0.0.0.0). INVALID_ARGUMENT
// names what is wrong.
absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view text);

// True for "localhost", 127.0.0.0/8 and ::1: addresses no other machine can
// reach. (0.0.0.0 and "" listen on every interface: false.)
bool IsLoopbackHost(absl::string_view host);

}  // namespace bpo

#endif  // BPO_COMMON_ENDPOINT_H_
