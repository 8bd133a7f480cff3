// `bpo aggregate`: eval results (`bpo eval --json_out --method NAME
// --run_seed N`) over tasks x seeds x methods, as in the paper's Fig. 3: per
// method the median, interquartile mean and mean of the win rates with
// stratified-bootstrap 95% CIs (seeds resampled within each task).
#ifndef BPO_EXPERIMENTS_AGGREGATE_H_
#define BPO_EXPERIMENTS_AGGREGATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "eval/stats.h"
#include "nlohmann/json.hpp"

namespace bpo::experiments {

struct AggregateOptions {
  std::string judge;  // whose win rate; "" takes each file's first judge (by name)
  int reps = 2000;    // bootstrap resamples (seed 0)
};

struct MethodAggregate {
  std::string method;
  size_t runs = 0;
  eval::AggregateIntervals intervals;
};

// One row per method, sorted by name. Errors name the file: NOT_FOUND (it
// cannot be opened), INVALID_ARGUMENT (not an eval result; no method name),
// NOT_FOUND (no such judge).
absl::StatusOr<std::vector<MethodAggregate>> AggregateEvalResults(
    const std::vector<std::string>& files, const AggregateOptions& options);

// The printed table: a header and a line per method.
std::string FormatAggregateTable(const std::vector<MethodAggregate>& rows);

// {method: {"median"|"iqm"|"mean": {"estimate", "lower", "upper"}, "runs"}}
nlohmann::json AggregateJson(const std::vector<MethodAggregate>& rows);

}  // namespace bpo::experiments

#endif  // BPO_EXPERIMENTS_AGGREGATE_H_
