// Evaluation statistics as in the paper's Fig. 3 (Agarwal et al. 2021,
// "Deep RL at the edge of the statistical precipice"): median, interquartile
// mean and mean over tasks x runs, with stratified-bootstrap confidence
// intervals (runs resampled with replacement within each task).
#ifndef BPO_EVAL_STATS_H_
#define BPO_EVAL_STATS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bpo::eval {

double Mean(const std::vector<double>& x);
// The middle value; the mean of the two middle values for an even count.
double Median(std::vector<double> x);
// Sample standard deviation (n - 1 in the denominator); 0 for fewer than 2
// values.
double StdDev(const std::vector<double>& x);
// Interquartile mean: the mean of the middle 50% (scipy.stats.trim_mean(x,
// 0.25): int(0.25 * n) values cut from each end).
double Iqm(std::vector<double> x);

// One score per (task, run): scores[task][run]. Tasks may have different
// numbers of runs; every task needs at least one.
using ScoreMatrix = std::vector<std::vector<double>>;
using Aggregate = std::function<double(const std::vector<double>&)>;

struct Interval {
  double estimate = 0;  // the aggregate of all scores
  double lower = 0, upper = 0;
};

// Percentile interval of `aggregate` over `reps` stratified bootstrap
// resamples, at `confidence` (0.95), seeded.
Interval StratifiedBootstrap(const ScoreMatrix& scores, const Aggregate& aggregate, int reps,
                             double confidence, uint64_t seed);

// The three estimators of the paper's Fig. 3, each with its percentile
// interval from StratifiedBootstrap(scores, estimator, reps, confidence, seed)
// (each estimator's resamples drawn from the same seed).
struct AggregateIntervals {
  Interval median, iqm, mean;
};
AggregateIntervals BootstrapAggregates(const ScoreMatrix& scores, int reps, double confidence,
                                       uint64_t seed);

// Win rate against references as in the paper: the fraction of prompts where
// the output's score is strictly higher than the reference's.
double WinRate(const std::vector<double>& output, const std::vector<double>& reference);

}  // namespace bpo::eval

#endif  // BPO_EVAL_STATS_H_
