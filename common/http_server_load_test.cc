// Slow and idle clients against HttpServer: they must not starve it.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "common/http_server.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"

namespace bpo {
namespace {

// A TCP connection to 127.0.0.1:port that sends nothing; closed on destruction.
class IdleConnection {
 public:
  explicit IdleConnection(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~IdleConnection() {
    if (fd_ >= 0) close(fd_);
  }
  IdleConnection(const IdleConnection&) = delete;
  IdleConnection& operator=(const IdleConnection&) = delete;

  bool connected() const { return connected_; }
  // Blocks until the server closes the connection (true) or `timeout` passes
  // or an error occurs (false).
  bool WaitForServerClose(absl::Duration timeout) {
    timeval tv = absl::ToTimeval(timeout);
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char byte;
    return recv(fd_, &byte, 1, 0) == 0;
  }

 private:
  int fd_;
  bool connected_ = false;
};

metrics::Registry* TestRegistry() {
  static auto* registry = [] {
    auto* r = new metrics::Registry();
    r->AddGauge("bpo_answer", "The answer.").value()->Add({}).Set(42);
    return r;
  }();
  return registry;
}

TEST(HttpServerLoadTest, SixteenIdleConnectionsDoNotStallMetrics) {
  auto server = HttpServer::Start({"127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  ServeMetrics(TestRegistry(), server->get());
  std::vector<std::unique_ptr<IdleConnection>> idle;
  for (int i = 0; i < 16; ++i) {
    idle.push_back(std::make_unique<IdleConnection>((*server)->port()));
    ASSERT_TRUE(idle.back()->connected()) << "idle connection " << i;
  }
  const absl::Time start = absl::Now();
  // The deadline is generous; before the fix this took ~29 s with 4 idle
  // connections and so failed here.
  auto got = testing::HttpGet("127.0.0.1", (*server)->port(), "/metrics", absl::Seconds(10));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "# HELP bpo_answer The answer.\n# TYPE bpo_answer gauge\nbpo_answer 42\n");
  std::cout << "GET /metrics with 16 idle connections: " << (absl::Now() - start) << "\n";
}

TEST(HttpServerLoadTest, IdleConnectionsAreClosedAfterTheRequestTimeout) {
  HttpServerOptions options;
  options.num_threads = 2;
  options.request_timeout = absl::Milliseconds(200);
  auto server = HttpServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ServeMetrics(TestRegistry(), server->get());
  // More idle clients than workers: each is dropped after request_timeout,
  // so the workers come free and a real request is still served.
  std::vector<std::unique_ptr<IdleConnection>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<IdleConnection>((*server)->port()));
    ASSERT_TRUE(idle.back()->connected()) << "idle connection " << i;
  }
  EXPECT_TRUE(idle.front()->WaitForServerClose(absl::Seconds(10)));
  auto got = testing::HttpGet("127.0.0.1", (*server)->port(), "/metrics", absl::Seconds(10));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 200);
}

TEST(HttpServerLoadTest, OutOfRangeOptionsAreInvalidArgument) {
  HttpServerOptions options;
  options.num_threads = 0;
  EXPECT_EQ(HttpServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = {};
  options.request_timeout = absl::ZeroDuration();
  EXPECT_EQ(HttpServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bpo
