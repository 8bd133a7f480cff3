#include "experiments/report_data.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "eval/eval_result.h"
#include "nlohmann/json.hpp"

namespace bpo::experiments {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Per-step learner metrics of one run (rank 0's steps.jsonl); lines that are
// not objects with an integer "step" are skipped.
std::vector<TrainingStep> ReadSteps(const std::string& run_dir) {
  std::vector<TrainingStep> out;
  std::ifstream in(run_dir + "/steps.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) continue;
    TrainingStep s;
    s.step = j["step"].get<int>();
    for (const auto& [key, value] : j.items()) {
      if (key != "step" && value.is_number()) s.metrics[key] = value.get<double>();
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<RewardModelSummary> ReadRewardModel(const std::string& root,
                                                  const std::string& task) {
  std::ifstream in(TaskDir(root, task) + "/rm/train_rm.json");
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("heldout_accuracy")) return std::nullopt;
  RewardModelSummary s;
  s.task = task;
  s.train_pairs = j.value("train_pairs", 0);
  s.heldout_accuracy = j["heldout_accuracy"].get<double>();
  s.heldout_pairs = j.value("heldout_pairs", 0);
  return s;
}

// The commit the runs started at, recorded once in <root>/provenance.txt.
std::string ReadProvenance(const std::string& root) {
  std::ifstream in(root + "/provenance.txt");
  std::string line;
  std::getline(in, line);
  return line.empty() ? "unknown" : line;
}

// Minutes from <root>/provenance.txt (written when the first invocation
// started) to the newest evaluation result, over all invocations.
std::string ElapsedMinutes(const std::string& root) {
  std::error_code ec;
  const auto start = fs::last_write_time(root + "/provenance.txt", ec);
  if (ec) return "time unknown";
  auto newest = start;
  for (const auto& entry : fs::directory_iterator(root + "/eval", ec)) {
    newest = std::max(newest, entry.last_write_time(ec));
  }
  const double minutes = std::chrono::duration<double>(newest - start).count() / 60;
  return absl::StrFormat("%.0f minutes", minutes);
}

// Reads one evaluation into `out[id]` when it exists and is complete.
void ReadInto(const std::string& root, const std::string& id, const std::string& task,
              std::map<std::string, RunResult>& out) {
  absl::StatusOr<RunResult> r = ReadRunResult(EvalPath(root, id), root, task);
  if (r.ok()) {
    out[id] = *r;
  } else if (absl::IsInvalidArgument(r.status())) {
    std::cerr << "bpo reproduce: skipping " << r.status().message() << "\n";
  }
}

}  // namespace

double Get(const RunResult& r, Metric m) {
  switch (m) {
    case Metric::kGreedyOracle:
      return r.win_oracle;
    case Metric::kGreedyRm:
      return r.win_rm;
    case Metric::kSampleOracle:
      return r.sample_win_oracle;
    case Metric::kSampleRm:
      return r.sample_win_rm;
  }
  return 0;
}

const char* ShortMetricName(Metric m) {
  switch (m) {
    case Metric::kGreedyOracle:
      return "greedy, oracle";
    case Metric::kGreedyRm:
      return "greedy, RM";
    case Metric::kSampleOracle:
      return "samples, oracle";
    case Metric::kSampleRm:
      return "samples, RM";
  }
  return "";
}

const char* MetricName(Metric m) {
  switch (m) {
    case Metric::kGreedyOracle:
      return "greedy output, oracle judge";
    case Metric::kGreedyRm:
      return "greedy output, RM judge";
    case Metric::kSampleOracle:
      return "temperature-1 samples, oracle judge";
    case Metric::kSampleRm:
      return "temperature-1 samples, RM judge";
  }
  return "";
}

absl::StatusOr<RunResult> ReadRunResult(const std::string& path, const std::string& root,
                                        const std::string& task) {
  BPO_ASSIGN_OR_RETURN(const eval::EvalResult result, eval::ReadEvalResult(path));
  absl::StatusOr<eval::JudgeSummary> rm = result.Judge(RmJudge(root, task));
  if (!rm.ok()) return absl::NotFoundError(absl::StrCat(path, ": ", rm.status().message()));
  absl::StatusOr<eval::JudgeSummary> oracle = result.Judge(OracleJudge(task));
  if (!oracle.ok()) {
    return absl::NotFoundError(absl::StrCat(path, ": ", oracle.status().message()));
  }
  RunResult r;
  r.win_rm = rm->win_rate;
  r.diff_rm = rm->mean_reward_diff;
  r.win_oracle = oracle->win_rate;
  r.diff_oracle = oracle->mean_reward_diff;
  r.sample_win_rm = rm->sample_win_rate;
  r.sample_win_oracle = oracle->sample_win_rate;
  return r;
}

ReportData LoadReportData(const Preset& preset, const std::vector<Experiment>& plan,
                          const std::string& root) {
  ReportData d;
  d.preset = preset;
  d.plan = plan;
  for (const Experiment& e : plan) ReadInto(root, e.id, e.task, d.runs);
  for (const std::string& task : preset.tasks) {
    ReadInto(root, SftEvalId(task), task, d.other_evals);
    if (auto rm = ReadRewardModel(root, task)) d.reward_models.push_back(*rm);
  }
  for (const Experiment& e : plan) {
    if (IsCurveRun(e)) {
      for (int step : CurveSteps(preset)) ReadInto(root, CurveId(e, step), e.task, d.other_evals);
    }
    if (e.group == Group::kTable1 && e.task == "tldr" && e.loss == Loss::kDpo) {
      d.steps[e.id] = ReadSteps(RunDir(root, e.id));
    }
  }
  d.runs_commit = ReadProvenance(root);
  d.report_commit = GitCommit();
  d.elapsed = ElapsedMinutes(root);
  return d;
}

std::string GitCommit() {
  std::string out;
  if (FILE* f =
          popen("git rev-parse HEAD 2>/dev/null && git status --porcelain --untracked-files=no "
                "2>/dev/null | head -1",
                "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, f)) out += buf;
    pclose(f);
  }
  const size_t nl = out.find('\n');
  if (nl == std::string::npos) return "unknown (not a git checkout)";
  std::string commit = out.substr(0, nl);
  if (out.size() > nl + 1) commit += " (with uncommitted changes)";
  return commit;
}

}  // namespace bpo::experiments
