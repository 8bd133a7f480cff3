#include "common/endpoint.h"

#include "gtest/gtest.h"

namespace bpo {
namespace {

TEST(EndpointTest, Parses) {
  auto e = ParseEndpoint("127.0.0.1:50051");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 50051);
  EXPECT_EQ(e->ToString(), "127.0.0.1:50051");
  EXPECT_EQ(ParseEndpoint("[::1]:80")->host, "::1");
  EXPECT_EQ(ParseEndpoint("[::1]:80")->ToString(), "[::1]:80");
  EXPECT_EQ(ParseEndpoint(":9")->ToString(), "0.0.0.0:9");
  EXPECT_EQ(ParseEndpoint("coordinator.svc:0")->port, 0);
}

TEST(EndpointTest, NamesWhatIsWrong) {
  EXPECT_EQ(ParseEndpoint("localhost").status().message(),
            "endpoint 'localhost': missing ':port' (expected host:port)");
  EXPECT_EQ(ParseEndpoint("h:70000").status().message(),
            "endpoint 'h:70000': port '70000' is not a number in 0..65535 (expected host:port)");
  EXPECT_EQ(ParseEndpoint("::1:80").status().message(),
            "endpoint '::1:80': IPv6 hosts need [brackets] (expected host:port)");
  EXPECT_EQ(ParseEndpoint("[::1").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bpo
