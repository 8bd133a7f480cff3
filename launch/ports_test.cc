#include "launch/ports.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

namespace bpo::launch {
namespace {

TEST(PickLoopbackPortTest, FreeAndOutsideTheEphemeralRange) {
  int lo = 32768, hi = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> lo >> hi;
  for (int i = 0; i < 20; ++i) {
    const int port = PickLoopbackPort();
    ASSERT_GT(port, 0);
    EXPECT_TRUE(port < lo || port > hi) << port << " is in [" << lo << ", " << hi << "]";
    EXPECT_LE(port, 65535);
  }
  // What it picks can be listened on (unless someone took it meanwhile:
  // then the next pick is tried).
  bool listened = false;
  for (int i = 0; i < 5 && !listened; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(PickLoopbackPort()));
    listened =
        bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd, 1) == 0;
    close(fd);
  }
  EXPECT_TRUE(listened);
}

}  // namespace
}  // namespace bpo::launch
