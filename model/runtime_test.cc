#include "model/runtime.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::model {
namespace {

TEST(RuntimeTest, ReportsLibTorch) {
  const RuntimeInfo info = GetRuntimeInfo();
  EXPECT_THAT(info.libtorch_version, ::testing::MatchesRegex("[12]\\.[0-9]+.*"));
  EXPECT_THAT(info.build_config, ::testing::HasSubstr("PyTorch built with"));
  EXPECT_GE(info.intra_op_threads, 1);
}

TEST(RuntimeTest, MatmulRateIsPositive) {
  auto gflops = MeasureMatmulGflops(128, 3);
  ASSERT_TRUE(gflops.ok()) << gflops.status();
  EXPECT_GT(*gflops, 0);
  EXPECT_EQ(MeasureMatmulGflops(0, 3).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bpo::model
