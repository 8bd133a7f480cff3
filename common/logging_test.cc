#include "common/logging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo {
namespace {

TEST(LoggingTest, LevelsFilterAndFormat) {
  ::testing::internal::CaptureStderr();
  SetMinLogLevel(LogLevel::kWarning);
  BPO_LOG(INFO) << "hidden";
  BPO_LOG(WARNING) << "shown " << 42;
  SetMinLogLevel(LogLevel::kInfo);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, ::testing::Not(::testing::HasSubstr("hidden")));
  EXPECT_THAT(err, ::testing::MatchesRegex(
                       "W[0-9]{8} [0-9:.]+ [0-9]+ logging_test.cc:[0-9]+\\] shown 42\n"));
}

TEST(LoggingTest, ParseLogLevel) {
  EXPECT_EQ(*ParseLogLevel("DEBUG"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("loud").status().message(),
            "unknown log level 'loud': expected debug, info, warning or error");
}

}  // namespace
}  // namespace bpo
