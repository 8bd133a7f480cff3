#include "eval/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace bpo::eval {

double Mean(const std::vector<double>& x) {
  if (x.empty()) return 0;
  return std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
}

double Median(std::vector<double> x) {
  if (x.empty()) return 0;
  std::sort(x.begin(), x.end());
  const size_t n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

double StdDev(const std::vector<double>& x) {
  if (x.size() < 2) return 0;
  const double m = Mean(x);
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return std::sqrt(s / static_cast<double>(x.size() - 1));
}

double Iqm(std::vector<double> x) {
  if (x.empty()) return 0;
  std::sort(x.begin(), x.end());
  const size_t cut = static_cast<size_t>(0.25 * static_cast<double>(x.size()));
  return Mean(std::vector<double>(x.begin() + cut, x.end() - cut));
}

Interval StratifiedBootstrap(const ScoreMatrix& scores, const Aggregate& aggregate, int reps,
                             double confidence, uint64_t seed) {
  std::vector<double> all;
  for (const auto& task : scores) all.insert(all.end(), task.begin(), task.end());
  Interval out;
  out.estimate = aggregate(all);
  std::mt19937_64 rng(seed);
  std::vector<double> stats;
  stats.reserve(reps);
  std::vector<double> sample;
  for (int r = 0; r < reps; ++r) {
    sample.clear();
    for (const auto& task : scores) {
      std::uniform_int_distribution<size_t> pick(0, task.size() - 1);
      for (size_t i = 0; i < task.size(); ++i) sample.push_back(task[pick(rng)]);
    }
    stats.push_back(aggregate(sample));
  }
  std::sort(stats.begin(), stats.end());
  auto quantile = [&](double q) {
    // Linear interpolation between order statistics (numpy's default).
    const double pos = q * static_cast<double>(stats.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, stats.size() - 1);
    return stats[lo] + (pos - static_cast<double>(lo)) * (stats[hi] - stats[lo]);
  };
  const double alpha = (1 - confidence) / 2;
  out.lower = quantile(alpha);
  out.upper = quantile(1 - alpha);
  return out;
}

AggregateIntervals BootstrapAggregates(const ScoreMatrix& scores, int reps, double confidence,
                                       uint64_t seed) {
  AggregateIntervals out;
  out.median = StratifiedBootstrap(
      scores, [](const std::vector<double>& x) { return Median(x); }, reps, confidence, seed);
  out.iqm = StratifiedBootstrap(
      scores, [](const std::vector<double>& x) { return Iqm(x); }, reps, confidence, seed);
  out.mean = StratifiedBootstrap(scores, Mean, reps, confidence, seed);
  return out;
}

double WinRate(const std::vector<double>& output, const std::vector<double>& reference) {
  const size_t n = std::min(output.size(), reference.size());
  if (n == 0) return 0;
  size_t wins = 0;
  for (size_t i = 0; i < n; ++i) wins += output[i] > reference[i];
  return static_cast<double>(wins) / static_cast<double>(n);
}

}  // namespace bpo::eval
