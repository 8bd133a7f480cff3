#include "common/http_server.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"

namespace bpo {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(HttpServerTest, ServesMetricsOnAnEphemeralPort) {
  metrics::Registry registry;
  registry.AddGauge("bpo_answer", "The answer.").value()->Add({}).Set(42);
  auto server = HttpServer::Start({"127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  ServeMetrics(&registry, server->get());
  ASSERT_GT((*server)->port(), 0);
  EXPECT_EQ((*server)->address(), "127.0.0.1:" + std::to_string((*server)->port()));

  auto got = testing::HttpGet("127.0.0.1", (*server)->port(), "/metrics");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(got->body, "# HELP bpo_answer The answer.\n# TYPE bpo_answer gauge\nbpo_answer 42\n");

  auto post = testing::HttpRequest("127.0.0.1", (*server)->port(), "POST", "/metrics", "x=1");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
  auto missing = testing::HttpGet("127.0.0.1", (*server)->port(), "/nothing");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
}

TEST(HttpServerTest, HandlersSeeMethodQueryAndBody) {
  auto server = HttpServer::Start({"127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->Handle("/echo", [](const HttpRequest& r) {
    return HttpResponse{201,
                        "text/plain",
                        r.method + "|" + r.path + "|" + r.query + "|" + r.body,
                        {{"X-Bpo", "yes"}}};
  });
  auto got = testing::HttpRequest("127.0.0.1", (*server)->port(), "POST", "/echo/a?b=c", "body");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 201);
  EXPECT_EQ(got->headers["x-bpo"], "yes");
  EXPECT_EQ(got->body, "POST|/echo/a|b=c|body");
}

TEST(HttpServerTest, RefusesOversizedBodies) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  auto server = HttpServer::Start(options);
  ASSERT_TRUE(server.ok());
  (*server)->Handle("/", [](const HttpRequest&) { return HttpResponse{}; });
  auto got =
      testing::HttpRequest("127.0.0.1", (*server)->port(), "POST", "/", std::string(100, 'x'));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 413);
}

TEST(HttpServerTest, PortInUseIsAClearError) {
  auto first = HttpServer::Start({"127.0.0.1:0"});
  ASSERT_TRUE(first.ok());
  const std::string address = (*first)->address();
  auto second = HttpServer::Start({address});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()),
              StartsWith("cannot serve HTTP on " + address + ": "));
}

TEST(HttpServerTest, MalformedAddress) {
  auto server = HttpServer::Start({"no-port"});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("missing ':port'"));
}

}  // namespace
}  // namespace bpo
