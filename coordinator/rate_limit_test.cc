#include "coordinator/rate_limit.h"

#include <gtest/gtest.h>

namespace bpo::coordinator {
namespace {

TEST(RateLimiterTest, EachIdentityHasItsOwnBucketThatRefills) {
  absl::Time now = absl::FromUnixSeconds(1000);
  RateLimiter limiter(10, 20, [&] { return now; });
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(limiter.Admit("actor:a")) << i;
  EXPECT_FALSE(limiter.Admit("actor:a"));
  EXPECT_TRUE(limiter.Admit("actor:b"));  // another identity is not affected
  now += absl::Milliseconds(100);         // one token back
  EXPECT_TRUE(limiter.Admit("actor:a"));
  EXPECT_FALSE(limiter.Admit("actor:a"));
  now += absl::Hours(1);  // refills only up to the burst
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(limiter.Admit("actor:a")) << i;
  EXPECT_FALSE(limiter.Admit("actor:a"));
}

TEST(RateLimiterTest, ZeroMeansNoLimit) {
  RateLimiter limiter(0, 0);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(limiter.Admit("x"));
}

}  // namespace
}  // namespace bpo::coordinator
