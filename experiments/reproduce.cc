#include "experiments/reproduce.h"

#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "experiments/child.h"
#include "experiments/report.h"
#include "experiments/report_data.h"
#include "experiments/task_setup.h"

namespace bpo::experiments {
namespace {

namespace fs = std::filesystem;

// Evaluates a policy of `task` into EvalPath(root, id); `adapter` is a PEFT
// adapter directory, a snapshot file (*.safetensors), or "" for the SFT policy.
absl::Status Evaluate(const Preset& p, const std::string& root, const std::string& id,
                      const std::string& task, const std::string& adapter,
                      const std::string& method, int seed) {
  const std::string dir = TaskDir(root, task);
  std::vector<std::string> args = {"eval",
                                   "--model=" + dir + "/sft",
                                   "--test_prompts=" + dir + "/data/test.jsonl",
                                   "--task=" + task,
                                   "--reward_model=" + dir + "/rm",
                                   absl::StrCat("--max_new_tokens=", p.max_new_tokens),
                                   "--json_out=" + EvalPath(root, id),
                                   "--method=" + method,
                                   absl::StrCat("--run_seed=", seed),
                                   absl::StrCat("--eval_samples=", p.eval_samples)};
  if (!adapter.empty()) {
    args.push_back((absl::EndsWith(adapter, ".safetensors") ? "--snapshot=" : "--adapter=") +
                   adapter);
  }
  return RunBpoQuietly(args, absl::StrCat(root, "/logs/eval-", id, ".log"));
}

// Each task's data, SFT policy and RM, and the SFT policy's evaluation.
absl::Status SetUpTasks(const Preset& p, const std::vector<Experiment>& plan,
                        const std::string& root) {
  std::set<std::string> tasks;
  for (const Experiment& e : plan) tasks.insert(e.task);
  for (const std::string& task : tasks) {
    TaskSetup setup;
    setup.task = task;
    setup.dir = TaskDir(root, task);
    setup.log_prefix = absl::StrCat(root, "/logs/", task, "-");
    setup.test_prompts = p.test_prompts;
    setup.sft_steps = p.sft_steps;
    setup.rm_steps = p.rm_steps;
    setup.rm_pairs = p.rm_pairs;
    setup.max_new_tokens = p.max_new_tokens;
    if (absl::Status s = PrepareTask(setup); !s.ok()) return s;
    const std::string id = SftEvalId(task);
    if (!fs::exists(EvalPath(root, id)) && !Evaluate(p, root, id, task, "", "SFT", 0).ok()) {
      return absl::InternalError(
          absl::StrCat("evaluating the SFT policy failed; log: ", root, "/logs/eval-", id, ".log"));
    }
  }
  return absl::OkStatus();
}

// Trains (bpo local) and evaluates every run whose evaluation is missing.
void RunPlan(const Preset& p, const std::vector<Experiment>& plan, const std::string& root) {
  int done = 0, failed = 0, ran = 0;
  const absl::Time runs_start = absl::Now();
  for (const Experiment& e : plan) {
    ++done;
    if (fs::exists(EvalPath(root, e.id))) continue;
    const std::string config = ConfigPath(root, e.id);
    std::ofstream(config) << RunConfigYaml(p, e, root);
    const absl::Time r0 = absl::Now();
    std::cout << absl::StrFormat("[%d/%d] %-28s %-34s seed %d ... ", done, plan.size(), e.id,
                                 Label(e), e.seed)
              << std::flush;
    const std::string run_dir = RunDir(root, e.id);
    const bool trained = fs::exists(run_dir + "/adapter/adapter_model.safetensors") ||
                         RunBpoQuietly({"local", "--config=" + config},
                                       absl::StrCat(root, "/logs/local-", e.id, ".log"))
                             .ok();
    if (!trained || !Evaluate(p, root, e.id, e.task, run_dir + "/adapter", Label(e), e.seed).ok()) {
      ++failed;
      std::cout << "FAILED (logs: " << root << "/logs/*-" << e.id << ".log)\n";
      continue;
    }
    ++ran;
    const double per_run = absl::ToDoubleSeconds(absl::Now() - runs_start) / ran;
    int left = 0;
    for (const Experiment& x : plan) left += fs::exists(EvalPath(root, x.id)) ? 0 : 1;
    const absl::StatusOr<RunResult> r = ReadRunResult(EvalPath(root, e.id), root, e.task);
    std::cout << absl::StrFormat(
                     "%3.0f s  win %.2f (oracle) %.2f (RM) %.2f (samples, oracle)  ETA %.0f min\n",
                     absl::ToDoubleSeconds(absl::Now() - r0), r.ok() ? r->win_oracle : 0.0,
                     r.ok() ? r->win_rm : 0.0, r.ok() ? r->sample_win_oracle : 0.0,
                     per_run * left / 60)
              << std::flush;
  }
  if (failed > 0) std::cout << failed << " run(s) failed; rerun to retry them.\n";
}

// Win rate during training: the snapshots the curve runs published,
// evaluated at CurveSteps (the final adapter is evaluated already).
void EvaluateCurves(const Preset& p, const std::vector<Experiment>& plan, const std::string& root) {
  for (const Experiment& e : plan) {
    if (!IsCurveRun(e) || !fs::exists(EvalPath(root, e.id))) continue;
    for (int step : CurveSteps(p)) {
      const std::string id = CurveId(e, step);
      if (fs::exists(EvalPath(root, id))) continue;
      const std::string snap =
          absl::StrCat(RunDir(root, e.id), "/snapshots/snapshot-", step, ".safetensors");
      std::cout << "win-rate curve: " << id << " ... " << std::flush;
      std::cout << (Evaluate(p, root, id, e.task, snap, Label(e), e.seed).ok() ? "done\n"
                                                                               : "FAILED\n");
    }
  }
}

}  // namespace

absl::Status Reproduce(const ReproduceOptions& o) {
  const Preset& p = o.preset;
  const std::string& root = o.root;
  for (const char* d : {"/logs", "/configs", "/eval", "/runs"}) fs::create_directories(root + d);
  std::vector<Experiment> plan = Plan(p, root);
  if (o.only) plan = FilterGroups(std::move(plan), *o.only);
  if (!o.report_only) {
    if (!fs::exists(root + "/provenance.txt")) {
      std::ofstream(root + "/provenance.txt") << GitCommit() << "\n";
    }
    std::cout << "bpo reproduce (" << p.name << " preset) in " << root << ": " << plan.size()
              << " runs through bpo local, T = " << p.steps << ", B = " << p.batch << ", seeds "
              << absl::StrJoin(p.seeds, ",") << "\n";
    if (absl::Status s = SetUpTasks(p, plan, root); !s.ok()) return s;
    RunPlan(p, plan, root);
    EvaluateCurves(p, plan, root);
  }
  const ReportData data = LoadReportData(p, plan, root);
  if (absl::Status s = WriteReport(data, root, o.report_dir); !s.ok()) return s;
  std::cout << "report: " << o.report_dir << "/report.md\n";
  return absl::OkStatus();
}

}  // namespace bpo::experiments
