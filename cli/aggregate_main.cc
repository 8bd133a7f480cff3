// bpo aggregate: eval results (bpo eval --json_out) over tasks x seeds x
// methods, as in the paper's Fig. 3: per method the median, interquartile
// mean and mean of the win rates, with stratified-bootstrap 95% CIs (seeds
// resampled within each task).
#include <fstream>
#include <iostream>
#include <map>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "eval/stats.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, judge, "", "Whose win rate (e.g. oracle:tldr); empty: the first judge of each file.");
ABSL_FLAG(int, reps, 2000, "Bootstrap resamples.");
ABSL_FLAG(std::string, aggregate_json, "", "Also write the table as JSON here.");

namespace bpo::cli {
namespace {

int Fail(const std::string& m) {
  std::cerr << "bpo aggregate: " << m << "\n";
  return kExitFailure;
}

int RunAggregate(const std::vector<std::string>& files) {
  // method -> task -> win rates (one per seed)
  std::map<std::string, std::map<std::string, std::vector<double>>> scores;
  for (const std::string& f : files) {
    std::ifstream in(f);
    if (!in) return Fail(absl::StrCat(f, ": cannot open"));
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("judges") || j["judges"].empty()) {
      return Fail(absl::StrCat(f, ": not a `bpo eval --json_out` result"));
    }
    std::string judge = absl::GetFlag(FLAGS_judge);
    if (judge.empty()) judge = j["judges"].begin().key();
    if (!j["judges"].contains(judge)) return Fail(absl::StrCat(f, ": has no judge '", judge, "'"));
    const std::string method = j.value("method", "");
    if (method.empty()) return Fail(absl::StrCat(f, ": no method name (bpo eval --method NAME)"));
    scores[method][j.value("task", "")].push_back(j["judges"][judge]["win_rate"].get<double>());
  }
  nlohmann::json out = nlohmann::json::object();
  std::cout << absl::StrFormat("%-28s %5s  %-22s %-22s %-22s\n", "method", "runs",
                               "median [95% CI]", "IQM [95% CI]", "mean [95% CI]");
  for (const auto& [method, by_task] : scores) {
    eval::ScoreMatrix m;
    size_t runs = 0;
    for (const auto& [task, v] : by_task) {
      m.push_back(v);
      runs += v.size();
    }
    std::string line = absl::StrFormat("%-28s %5d ", method, runs);
    for (const auto& [name, f] : std::vector<std::pair<std::string, eval::Aggregate>>{
             {"median", [](const std::vector<double>& x) { return eval::Median(x); }},
             {"iqm", [](const std::vector<double>& x) { return eval::Iqm(x); }},
             {"mean", eval::Mean}}) {
      const eval::Interval ci = eval::StratifiedBootstrap(m, f, absl::GetFlag(FLAGS_reps), 0.95, 0);
      absl::StrAppend(&line, absl::StrFormat(" %.3f [%.3f, %.3f]    ", ci.estimate, ci.lower, ci.upper));
      out[method][name] = {{"estimate", ci.estimate}, {"lower", ci.lower}, {"upper", ci.upper}};
    }
    out[method]["runs"] = runs;
    std::cout << line << "\n";
  }
  if (!absl::GetFlag(FLAGS_aggregate_json).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_aggregate_json)) << out.dump(2) << "\n";
  }
  return kExitOk;
}

}  // namespace

const Command& AggregateCommand() {
  static const Command kCommand{
      "aggregate", "Median, IQM and mean win rates with bootstrap CIs over eval results.",
      "bpo aggregate [--judge J] EVAL.json...", __FILE__, 1, 100000, &RunAggregate};
  return kCommand;
}

}  // namespace bpo::cli
