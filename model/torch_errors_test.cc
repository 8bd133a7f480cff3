#include "model/torch_errors.h"

#include <ATen/ATen.h>

#include <new>
#include <vector>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::model {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(TorchErrorsTest, ResultsPassThrough) {
  EXPECT_TRUE(CatchTorchErrors("ok", [] { return absl::OkStatus(); }).ok());
  absl::StatusOr<int> v = CatchTorchErrors("value", []() -> absl::StatusOr<int> { return 7; });
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 7);
  absl::Status own = CatchTorchErrors("own", [] { return absl::NotFoundError("x"); });
  EXPECT_EQ(own.code(), absl::StatusCode::kNotFound);
}

TEST(TorchErrorsTest, LibTorchErrorIsInternalWithContextAndNoBacktrace) {
  absl::StatusOr<at::Tensor> r =
      CatchTorchErrors("multiplying", []() -> absl::StatusOr<at::Tensor> {
        return at::mm(at::ones({2, 3}), at::ones({2, 3}));
      });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(r.status().message(), HasSubstr("multiplying: "));
  EXPECT_THAT(r.status().message(), HasSubstr("2x3"));
  EXPECT_THAT(r.status().message(), Not(HasSubstr("frame #")));
}

TEST(TorchErrorsTest, OutOfMemoryIsResourceExhausted) {
  // 2^42 floats: 16 TiB, more than any allocator here hands out.
  absl::Status huge = CatchTorchErrors("allocating", [] {
    at::Tensor t = at::empty({int64_t{1} << 42}, at::kFloat);
    t.fill_(1);
    return absl::OkStatus();
  });
  EXPECT_EQ(huge.code(), absl::StatusCode::kResourceExhausted) << huge;
  EXPECT_THAT(huge.message(), HasSubstr("allocating: "));

  absl::Status bad =
      CatchTorchErrors("bad_alloc", []() -> absl::Status { throw std::bad_alloc(); });
  EXPECT_EQ(bad.code(), absl::StatusCode::kResourceExhausted);
  absl::Status length = CatchTorchErrors("reserve", [] {
    std::vector<double> v;
    v.reserve(v.max_size() + 1);
    return absl::OkStatus();
  });
  EXPECT_EQ(length.code(), absl::StatusCode::kResourceExhausted);
}

TEST(TorchErrorsTest, AnyOtherExceptionIsInternal) {
  absl::Status s =
      CatchTorchErrors("parsing", []() -> absl::Status { throw std::runtime_error("bad thing"); });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(s.message(), "parsing: bad thing");
  absl::Status u = CatchTorchErrors("odd", []() -> absl::Status { throw 42; });
  EXPECT_EQ(u.code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace bpo::model
