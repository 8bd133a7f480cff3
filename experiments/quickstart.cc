#include "experiments/quickstart.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "eval/eval_result.h"
#include "experiments/child.h"
#include "experiments/task_setup.h"

namespace bpo::experiments {
namespace {

namespace fs = std::filesystem;

// One evaluated policy: win rate and mean reward difference by the reward
// model ([0]) and the oracle ([1]).
struct Row {
  std::string name, adapter;
  double win[2] = {0, 0}, diff[2] = {0, 0};
};

// Evaluates `row`'s policy into <dir>/eval-{sft,bpo}.json and reads it back.
absl::Status EvaluateRow(const QuickstartOptions& o, Row& row) {
  const std::string& dir = o.dir;
  const std::string out = absl::StrCat(dir, "/eval-", row.adapter.empty() ? "sft" : "bpo", ".json");
  std::vector<std::string> args = {"eval",
                                   "--model=" + dir + "/sft",
                                   "--test_prompts=" + dir + "/data/test.jsonl",
                                   "--task=tldr",
                                   "--reward_model=" + dir + "/rm",
                                   "--max_new_tokens=48",
                                   "--json_out=" + out};
  if (!row.adapter.empty()) args.push_back("--adapter=" + row.adapter);
  BPO_RETURN_IF_ERROR(RunBpoStep("evaluate " + row.name + " (bpo eval)", args, out + ".log"));
  BPO_ASSIGN_OR_RETURN(const eval::EvalResult result, eval::ReadEvalResult(out));
  const std::string judges[2] = {"rm:" + dir + "/rm", "oracle:tldr"};
  for (int k = 0; k < 2; ++k) {
    absl::StatusOr<eval::JudgeSummary> j = result.Judge(judges[k]);
    if (!j.ok()) return absl::InternalError(absl::StrCat(out, ": ", j.status().message()));
    row.win[k] = j->win_rate;
    row.diff[k] = j->mean_reward_diff;
  }
  return absl::OkStatus();
}

void WriteReport(const QuickstartOptions& o, const std::vector<Row>& rows,
                 const std::string& path) {
  const int T = o.bpo_steps;
  std::ostringstream table;
  table
      << "| policy | win rate (RM) | mean reward diff (RM) | win rate (oracle) | mean reward diff "
         "(oracle) |\n"
      << "|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    table << absl::StrFormat("| %s | %.3f | %.3f | %.3f | %.3f |\n", r.name, r.win[0], r.diff[0],
                             r.win[1], r.diff[1]);
  }
  std::ofstream md(path);
  md << "# bpo quickstart\n\nThe synthetic summarisation task (`tldr`): a 2-layer Llama and its "
     << "tokenizer trained from scratch (SFT), a DeBERTa-v3-style reward model trained on pairs "
     << "sampled from the SFT policy and labelled by the task's hidden oracle, then BPO (T = " << T
     << " steps, F = " << std::max(1, T / 4) << " annotation phases) with the reward model as "
     << "annotator.\n\nWin rate against the 100 test references (greedy, 48 new tokens): the "
     << "reward model judges as the annotator did; the hidden oracle shows whether what the RM "
     << "rewards is what the task wants (reward over-optimisation when they part).\n\n"
     << table.str() << "\nFiles: `eval-sft.json`, `eval-bpo.json` (every output and score), "
     << "`rm/train_rm.json` (the RM's held-out accuracy against the oracle), `bpo.yaml` (the run "
     << "config), `bpo/logs/` (each process's log), `bpo/steps.jsonl` (the learner's loss, margin "
     << "and KL per step).\n";
}

}  // namespace

std::string QuickstartConfigYaml(const QuickstartOptions& o) {
  const std::string& dir = o.dir;
  const int T = o.bpo_steps;
  std::ostringstream c;
  c << "# Written by bpo quickstart.\nrun_id: bpo\noutput_dir: " << dir << "\n"
    << "schedule: {total_steps: " << T << ", phases: " << std::max(1, T / 4) << ", batch_size: 8}\n"
    << "loss: {type: dpo, beta: 0.1}\n"
    << "reference: {mode: behavior, logprob_source: learner}\n"
    << "lora: {members: 2, rank: 8, alpha: 16, dropout: 0.0, target_modules: [all-linear], "
       "merge_mode: mean_delta}\n"
    << "optimizer: {learning_rate: 0.001}\n"
    << "sampling: {max_new_tokens: 48, prompts_per_lease: 8}\n"
    << "model: {policy: " << dir << "/sft, reward_model: " << dir << "/rm}\n"
    << "data: {prompts: " << dir << "/data/prompts.jsonl, format: jsonl}\n"
    << "annotation: {kind: rm, ties: random, pairs_per_lease: 16}\n"
    << "coordinator: {actor_lease_seconds: 30, heartbeat_seconds: 1}\n"
    << "learner: {world_size: 2, checkpoint_every: 10}\n"
    << "launch: {actors: 2, annotators: 1}\nseeds: {global: 1}\n";
  return c.str();
}

absl::Status Quickstart(const QuickstartOptions& o) {
  const std::string& dir = o.dir;
  fs::create_directories(dir + "/logs");
  const absl::Time t0 = absl::Now();
  std::cout << "bpo quickstart in " << dir << ": the summarisation task, a policy and a reward "
            << "model trained from scratch, BPO through the distributed system, evaluation\n";
  TaskSetup setup;
  setup.task = "tldr";
  setup.dir = dir;
  setup.log_prefix = dir + "/logs/";
  setup.sft_steps = o.sft_steps;
  setup.rm_steps = o.rm_steps;
  setup.show_output = true;
  BPO_RETURN_IF_ERROR(PrepareTask(setup));
  const std::string config = dir + "/bpo.yaml";
  std::ofstream(config) << QuickstartConfigYaml(o);
  const std::string bpo_run = dir + "/bpo";
  if (!fs::exists(bpo_run + "/adapter/adapter_model.safetensors")) {
    BPO_RETURN_IF_ERROR(RunBpoStep(
        "BPO with the distributed system (bpo local: coordinator, 2 actors, RM annotator, 2 "
        "learner ranks)",
        {"local", "--config=" + config}, dir + "/logs/local.log", /*show_output=*/true));
  }
  std::vector<Row> rows = {{"SFT", ""},
                           {absl::StrCat("BPO (DPO loss, F = ", std::max(1, o.bpo_steps / 4), ")"),
                            bpo_run + "/adapter"}};
  for (Row& r : rows) BPO_RETURN_IF_ERROR(EvaluateRow(o, r));
  const std::string report = dir + "/report.md";
  WriteReport(o, rows, report);
  std::cout << "\nwin rate against the test references (100 prompts, greedy):\n"
            << absl::StrFormat("  %-22s %13s %13s %15s %15s\n", "policy", "win (RM)", "diff (RM)",
                               "win (oracle)", "diff (oracle)");
  for (const Row& r : rows) {
    std::cout << absl::StrFormat("  %-22s %13.3f %13.3f %15.3f %15.3f\n", r.name, r.win[0],
                                 r.diff[0], r.win[1], r.diff[1]);
  }
  std::cout << absl::StrFormat(
      "\nquickstart done in %.0f s. Report: %s (everything else is in %s).\n",
      absl::ToDoubleSeconds(absl::Now() - t0), report, dir);
  return absl::OkStatus();
}

}  // namespace bpo::experiments
