#include "common/status_macros.h"

#include "gtest/gtest.h"

namespace bpo {
namespace {

absl::Status FailIf(bool fail) {
  return fail ? absl::InvalidArgumentError("failed") : absl::OkStatus();
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status Chain(bool fail, int* steps) {
  BPO_RETURN_IF_ERROR(FailIf(false));
  ++*steps;
  BPO_RETURN_IF_ERROR(FailIf(fail));
  ++*steps;
  return absl::OkStatus();
}

absl::StatusOr<int> Quarter(int x) {
  BPO_ASSIGN_OR_RETURN(int half, Half(x));
  BPO_ASSIGN_OR_RETURN(const int quarter, Half(half));
  return quarter;
}

TEST(StatusMacrosTest, ReturnIfErrorStopsAtTheFirstError) {
  int steps = 0;
  EXPECT_TRUE(Chain(false, &steps).ok());
  EXPECT_EQ(steps, 2);
  steps = 0;
  EXPECT_EQ(Chain(true, &steps), absl::InvalidArgumentError("failed"));
  EXPECT_EQ(steps, 1);
}

TEST(StatusMacrosTest, AssignOrReturn) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status(), absl::InvalidArgumentError("odd"));
  EXPECT_EQ(Quarter(7).status(), absl::InvalidArgumentError("odd"));
}

}  // namespace
}  // namespace bpo
