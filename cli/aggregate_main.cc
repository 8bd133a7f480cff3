// bpo aggregate: median, IQM and mean win rates with bootstrap CIs over eval
// results (experiments/aggregate.h). This file holds the command's flags.
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "experiments/aggregate.h"

ABSL_FLAG(std::string, judge, "",
          "Whose win rate (e.g. oracle:tldr); empty: the first judge of each file.");
ABSL_FLAG(int, reps, 2000, "Bootstrap resamples.");
ABSL_FLAG(std::string, aggregate_json, "", "Also write the table as JSON here.");

namespace bpo::cli {
namespace {

int RunAggregate(const std::vector<std::string>& files) {
  experiments::AggregateOptions o;
  o.judge = absl::GetFlag(FLAGS_judge);
  o.reps = absl::GetFlag(FLAGS_reps);
  auto rows = experiments::AggregateEvalResults(files, o);
  if (!rows.ok()) return Fail("aggregate", rows.status());
  std::cout << experiments::FormatAggregateTable(*rows);
  if (const std::string path = absl::GetFlag(FLAGS_aggregate_json); !path.empty()) {
    std::ofstream f(path);
    f << experiments::AggregateJson(*rows).dump(2) << "\n";
    if (!f) {
      std::cerr << "bpo aggregate: " << path << ": cannot write\n";
      return kExitFailure;
    }
  }
  return kExitOk;
}

}  // namespace

const Command& AggregateCommand() {
  static const Command kCommand{
      "aggregate",
      "Median, IQM and mean win rates with bootstrap CIs over eval results.",
      "bpo aggregate [--judge J] EVAL.json...",
      __FILE__,
      1,
      100000,
      &RunAggregate};
  return kCommand;
}

}  // namespace bpo::cli
