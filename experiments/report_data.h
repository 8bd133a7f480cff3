// What `bpo reproduce`'s report is made of, read once from the reproduce
// directory: every finished run's win rates (from its `bpo eval` result),
// the SFT policies' and the win-rate curves' evaluations, the learner's
// per-step metrics of the runs with training curves, the reward models'
// held-out accuracy and the provenance. The report's sections
// (experiments/report.h) are pure functions of a ReportData, so a test can
// build one by hand.
#ifndef BPO_EXPERIMENTS_REPORT_DATA_H_
#define BPO_EXPERIMENTS_REPORT_DATA_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "experiments/plan.h"

namespace bpo::experiments {

// One evaluated policy's numbers by the task's two judges.
struct RunResult {
  double win_rm = 0, win_oracle = 0, diff_rm = 0, diff_oracle = 0;
  // The same over temperature-1 samples; NaN when none were drawn.
  double sample_win_rm = 0, sample_win_oracle = 0;
};

// Which number of a RunResult a table or plot shows.
enum class Metric { kGreedyOracle, kGreedyRm, kSampleOracle, kSampleRm };
double Get(const RunResult& r, Metric m);
const char* ShortMetricName(Metric m);  // "greedy, oracle": legends and titles
const char* MetricName(Metric m);       // "greedy output, oracle judge"

// The evaluation at `path` (bpo eval --json_out) of a policy on `task`, by
// the judges RmJudge(root, task) and OracleJudge(task). Errors name the file:
// NOT_FOUND when it does not exist (the run has not finished), NOT_FOUND
// when a judge is missing, INVALID_ARGUMENT when it is malformed.
absl::StatusOr<RunResult> ReadRunResult(const std::string& path, const std::string& root,
                                        const std::string& task);

// A reward model's `train_rm.json`.
struct RewardModelSummary {
  std::string task;
  int train_pairs = 0;
  double heldout_accuracy = 0;
  int heldout_pairs = 0;
};

// One line of a run's steps.jsonl: the learner step and its numeric metrics
// ("loss", "margin", "kl_reference", "kl_sft", ...).
struct TrainingStep {
  int step = 0;
  std::map<std::string, double> metrics;
};

struct ReportData {
  Preset preset;
  std::vector<Experiment> plan;
  std::map<std::string, RunResult> runs;  // by run id: the plan's finished runs
  // By evaluation id: SftEvalId(task) and CurveId(run, step) that exist.
  std::map<std::string, RunResult> other_evals;
  // By run id: rank 0's steps.jsonl of Table 1's tldr DPO-loss runs.
  std::map<std::string, std::vector<TrainingStep>> steps;
  std::vector<RewardModelSummary> reward_models;  // in preset.tasks order, those trained
  std::string runs_commit;                        // the commit the runs started at (provenance.txt)
  std::string report_commit;                      // the commit writing the report
  std::string elapsed;  // "46 minutes": first setup step to last evaluation

  // Values of `metric` of the finished runs `pick` selects, in plan order.
  template <typename Pick>
  std::vector<double> Wins(Pick pick, Metric metric) const {
    std::vector<double> v;
    for (const Experiment& e : plan) {
      if (!pick(e)) continue;
      if (auto it = runs.find(e.id); it != runs.end()) v.push_back(Get(it->second, metric));
    }
    return v;
  }
};

// Reads everything above from `root` for `plan`. Missing files are runs not
// finished yet; a malformed evaluation result is reported on stderr and
// counted as not finished.
ReportData LoadReportData(const Preset& preset, const std::vector<Experiment>& plan,
                          const std::string& root);

// The commit of the git checkout the process runs in ("<sha>", "<sha> (with
// uncommitted changes)" or "unknown (not a git checkout)"); runs `git`.
std::string GitCommit();

}  // namespace bpo::experiments

#endif  // BPO_EXPERIMENTS_REPORT_DATA_H_
