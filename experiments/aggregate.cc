#include "experiments/aggregate.h"

#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "eval/eval_result.h"

namespace bpo::experiments {
namespace {

nlohmann::json IntervalJson(const eval::Interval& ci) {
  return {{"estimate", ci.estimate}, {"lower", ci.lower}, {"upper", ci.upper}};
}

}  // namespace

absl::StatusOr<std::vector<MethodAggregate>> AggregateEvalResults(
    const std::vector<std::string>& files, const AggregateOptions& options) {
  // method -> task -> win rates (one per seed)
  std::map<std::string, std::map<std::string, std::vector<double>>> scores;
  for (const std::string& f : files) {
    absl::StatusOr<eval::EvalResult> r = eval::ReadEvalResult(f);
    if (!r.ok()) return r.status();
    const std::string judge = options.judge.empty() ? r->judges.begin()->first : options.judge;
    absl::StatusOr<eval::JudgeSummary> j = r->Judge(judge);
    if (!j.ok()) return absl::NotFoundError(absl::StrCat(f, ": ", j.status().message()));
    if (r->method.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(f, ": no method name (bpo eval --method NAME)"));
    }
    scores[r->method][r->task].push_back(j->win_rate);
  }
  std::vector<MethodAggregate> out;
  for (const auto& [method, by_task] : scores) {
    eval::ScoreMatrix m;
    MethodAggregate row;
    row.method = method;
    for (const auto& [task, v] : by_task) {
      m.push_back(v);
      row.runs += v.size();
    }
    row.intervals = eval::BootstrapAggregates(m, options.reps, 0.95, 0);
    out.push_back(std::move(row));
  }
  return out;
}

std::string FormatAggregateTable(const std::vector<MethodAggregate>& rows) {
  std::string out = absl::StrFormat("%-28s %5s  %-22s %-22s %-22s\n", "method", "runs",
                                    "median [95% CI]", "IQM [95% CI]", "mean [95% CI]");
  for (const MethodAggregate& r : rows) {
    absl::StrAppend(&out, absl::StrFormat("%-28s %5d ", r.method, r.runs));
    for (const eval::Interval& ci : {r.intervals.median, r.intervals.iqm, r.intervals.mean}) {
      absl::StrAppend(&out,
                      absl::StrFormat(" %.3f [%.3f, %.3f]    ", ci.estimate, ci.lower, ci.upper));
    }
    out += "\n";
  }
  return out;
}

nlohmann::json AggregateJson(const std::vector<MethodAggregate>& rows) {
  nlohmann::json out = nlohmann::json::object();
  for (const MethodAggregate& r : rows) {
    out[r.method]["median"] = IntervalJson(r.intervals.median);
    out[r.method]["iqm"] = IntervalJson(r.intervals.iqm);
    out[r.method]["mean"] = IntervalJson(r.intervals.mean);
    out[r.method]["runs"] = r.runs;
  }
  return out;
}

}  // namespace bpo::experiments
