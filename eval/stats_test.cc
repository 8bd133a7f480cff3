#include "eval/stats.h"

#include <gtest/gtest.h>

namespace bpo::eval {
namespace {

// Mean and median checked with numpy 2 (tests/fixtures/requirements.txt's
// venv: np.mean, np.median); the IQM follows scipy.stats.trim_mean(x, 0.25),
// which cuts int(0.25 * n) values from each end.
TEST(StatsTest, MedianIqmAndMeanMatchNumpyAndScipy) {
  const std::vector<double> x = {9, 1, 7, 3, 5, 100, 2, 8};
  EXPECT_DOUBLE_EQ(Mean(x), 16.875);
  EXPECT_DOUBLE_EQ(Median(x), 6.0);
  // sorted: 1 2 3 5 7 8 9 100; cut 2 each side -> 3 5 7 8
  EXPECT_DOUBLE_EQ(Iqm(x), 5.75);
  const std::vector<double> odd = {4, 1, 3, 2, 10};
  EXPECT_DOUBLE_EQ(Median(odd), 3.0);
  // int(0.25 * 5) = 1 cut each side -> 2 3 4
  EXPECT_DOUBLE_EQ(Iqm(odd), 3.0);
}

TEST(StatsTest, WinRateIsStrict) {
  EXPECT_DOUBLE_EQ(WinRate({1, 2, 3, 4}, {0, 2, 4, 1}), 0.5);  // the tie does not count
  EXPECT_DOUBLE_EQ(WinRate({}, {}), 0.0);
}

TEST(StatsTest, StratifiedBootstrapIsSeededCoversTheEstimateAndNarrowsWithRuns) {
  const ScoreMatrix three = {{0.2, 0.4, 0.3}, {0.8, 0.6, 0.7}};
  const Interval a = StratifiedBootstrap(three, Mean, 2000, 0.95, 1);
  const Interval b = StratifiedBootstrap(three, Mean, 2000, 0.95, 1);
  EXPECT_DOUBLE_EQ(a.lower, b.lower);
  EXPECT_DOUBLE_EQ(a.estimate, 0.5);
  EXPECT_LE(a.lower, a.estimate);
  EXPECT_GE(a.upper, a.estimate);
  // Resampling within tasks: task means stay near 0.3 and 0.7, so the mean's
  // interval is within [0.4, 0.6] even though the scores span [0.2, 0.8].
  EXPECT_GE(a.lower, 0.4 - 1e-12);
  EXPECT_LE(a.upper, 0.6 + 1e-12);
  ScoreMatrix many = {{}, {}};
  for (int i = 0; i < 30; ++i) {
    many[0].push_back(three[0][i % 3]);
    many[1].push_back(three[1][i % 3]);
  }
  const Interval c = StratifiedBootstrap(many, Mean, 2000, 0.95, 1);
  EXPECT_LT(c.upper - c.lower, a.upper - a.lower);
  // A constant has a zero-width interval.
  const Interval d = StratifiedBootstrap({{1, 1, 1}}, Iqm, 100, 0.95, 3);
  EXPECT_DOUBLE_EQ(d.lower, 1);
  EXPECT_DOUBLE_EQ(d.upper, 1);
}

// Python: statistics.stdev([2, 4, 4, 4, 5, 5, 7, 9]) = 2.138089935299395.
TEST(StatsTest, StdDevIsTheSampleStandardDeviation) {
  EXPECT_DOUBLE_EQ(StdDev({2, 4, 4, 4, 5, 5, 7, 9}), 2.138089935299395);
  EXPECT_DOUBLE_EQ(StdDev({3}), 0.0);
  EXPECT_DOUBLE_EQ(StdDev({}), 0.0);
}

TEST(StatsTest, BootstrapAggregatesIsEachEstimatorsStratifiedBootstrap) {
  const ScoreMatrix m = {{0.1, 0.5, 0.9, 0.2}, {0.6, 0.7}};
  const AggregateIntervals a = BootstrapAggregates(m, 500, 0.95, 7);
  const Interval median = StratifiedBootstrap(
      m, [](const std::vector<double>& x) { return Median(x); }, 500, 0.95, 7);
  const Interval iqm = StratifiedBootstrap(
      m, [](const std::vector<double>& x) { return Iqm(x); }, 500, 0.95, 7);
  const Interval mean = StratifiedBootstrap(m, Mean, 500, 0.95, 7);
  EXPECT_DOUBLE_EQ(a.median.estimate, 0.55);
  EXPECT_DOUBLE_EQ(a.median.lower, median.lower);
  EXPECT_DOUBLE_EQ(a.median.upper, median.upper);
  EXPECT_DOUBLE_EQ(a.iqm.lower, iqm.lower);
  EXPECT_DOUBLE_EQ(a.iqm.upper, iqm.upper);
  EXPECT_DOUBLE_EQ(a.mean.estimate, 0.5);
  EXPECT_DOUBLE_EQ(a.mean.lower, mean.lower);
  EXPECT_DOUBLE_EQ(a.mean.upper, mean.upper);
}

}  // namespace
}  // namespace bpo::eval
