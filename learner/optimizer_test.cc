#include "learner/optimizer.h"

#include <cmath>

#include "gtest/gtest.h"

namespace bpo::learner {
namespace {

TEST(AdamWTest, FirstStepsFollowTheClosedForm) {
  at::Tensor p = at::tensor({1.0, -2.0}, at::kDouble).set_requires_grad(true);
  AdamW opt({p}, {0.9, 0.999, 1e-6, 0.01});
  const double lr = 0.1;
  double m[2] = {0, 0}, v[2] = {0, 0}, x[2] = {1.0, -2.0};
  const double grads[3][2] = {{0.5, -1.0}, {0.25, 2.0}, {-1.0, 0.0}};
  for (int t = 1; t <= 3; ++t) {
    p.mutable_grad() = at::tensor({grads[t - 1][0], grads[t - 1][1]}, at::kDouble);
    opt.Step(lr);
    for (int i = 0; i < 2; ++i) {
      const double g = grads[t - 1][i];
      x[i] *= 1 - lr * 0.01;
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      const double mh = m[i] / (1 - std::pow(0.9, t)),
                   denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(0.999, t)) + 1e-6;
      x[i] -= lr * mh / denom;
      EXPECT_NEAR(p[i].item<double>(), x[i], 1e-12) << "step " << t << " param " << i;
    }
  }
  EXPECT_EQ(opt.steps(), 3);
}

TEST(ClipTest, ScalesToTheGlobalNorm) {
  at::Tensor a = at::zeros({2}).set_requires_grad(true), b = at::zeros({1}).set_requires_grad(true);
  a.mutable_grad() = at::tensor({3.0f, 0.0f});
  b.mutable_grad() = at::tensor({4.0f});
  EXPECT_NEAR(ClipGradNorm({a, b}, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<float>(), 3.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(b.grad()[0].item<float>(), 4.0 / (5.0 + 1e-6), 1e-6);
  // Below the limit nothing changes.
  EXPECT_NEAR(ClipGradNorm({a, b}, 10.0), 1.0, 1e-5);
  EXPECT_NEAR(b.grad()[0].item<float>(), 4.0 / (5.0 + 1e-6), 1e-6);
}

TEST(ScheduleTest, LinearDecayToZeroWithoutWarmup) {
  EXPECT_DOUBLE_EQ(LinearScheduleLr(5e-5, 0, 10, 0), 5e-5);
  EXPECT_DOUBLE_EQ(LinearScheduleLr(5e-5, 5, 10, 0), 2.5e-5);
  EXPECT_DOUBLE_EQ(LinearScheduleLr(5e-5, 10, 10, 0), 0);
  EXPECT_DOUBLE_EQ(LinearScheduleLr(1.0, 1, 10, 2), 0.5);
  EXPECT_DOUBLE_EQ(LinearScheduleLr(1.0, 2, 10, 2), 1.0);
}

TEST(EpochOrderTest, EveryRowOncePerEpochSeededAndReshuffled) {
  EpochOrder a(10, 7), b(10, 7), c(10, 8);
  const std::vector<size_t> first = a.Next(10), second = a.Next(10);
  EXPECT_EQ(first, b.Next(10));
  EXPECT_NE(first, c.Next(10));
  for (const auto* epoch : {&first, &second}) {
    std::vector<size_t> sorted = *epoch;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i) EXPECT_EQ(sorted[i], i);
  }
  EXPECT_NE(first, second);
  EXPECT_EQ(a.Next(25).size(), 25u);  // a batch may span epochs
  EXPECT_TRUE(EpochOrder(0, 1).Next(3).empty());
}

}  // namespace
}  // namespace bpo::learner
