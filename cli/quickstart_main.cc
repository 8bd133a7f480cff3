// bpo quickstart: the whole method on a laptop CPU, nothing downloaded.
//   1. the synthetic summarisation task's data (bpo task generate),
//   2. a tokenizer and a small policy trained from scratch (bpo sft),
//   3. a DeBERTa-v3-style reward model trained on pairs sampled from that
//      policy and labelled by the task's hidden oracle (bpo train-rm),
//   4. a BPO run through the distributed system (bpo local: coordinator,
//      2 actors, the reward model as annotator, 2 learner ranks),
//   5. evaluation of SFT and BPO against the test references, judged by the
//      reward model and by the hidden oracle (bpo eval), and a report.
// Each step is a child `bpo` process with its log in the run directory; a
// step whose output exists is skipped, so a rerun resumes.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/child.h"
#include "cli/command.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, quickstart_dir, "runs/quickstart", "Where the quickstart writes everything.");
ABSL_FLAG(int64_t, quickstart_sft_steps, 1500, "SFT steps.");
ABSL_FLAG(int, quickstart_bpo_steps, 40, "BPO learner steps T (F = T/4 annotation phases).");
ABSL_FLAG(int64_t, quickstart_rm_steps, 300, "Reward-model training steps.");

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;

int RunQuickstart(const std::vector<std::string>&) {
  const std::string dir = fs::absolute(absl::GetFlag(FLAGS_quickstart_dir)).lexically_normal().string();
  fs::create_directories(dir + "/logs");
  const absl::Time t0 = absl::Now();
  const std::string data = dir + "/data", sft = dir + "/sft", rm = dir + "/rm", bpo_run = dir + "/bpo";
  std::cout << "bpo quickstart in " << dir << ": the summarisation task, a policy and a reward "
            << "model trained from scratch, BPO through the distributed system, evaluation\n";
  TaskSetup setup;
  setup.task = "tldr";
  setup.dir = dir;
  setup.log_prefix = dir + "/logs/";
  setup.sft_steps = absl::GetFlag(FLAGS_quickstart_sft_steps);
  setup.rm_steps = absl::GetFlag(FLAGS_quickstart_rm_steps);
  setup.show_output = true;
  if (!PrepareTask(setup)) return kExitFailure;
  const int T = absl::GetFlag(FLAGS_quickstart_bpo_steps);
  const std::string config = dir + "/bpo.yaml";
  {
    std::ofstream c(config);
    c << "# Written by bpo quickstart.\nrun_id: bpo\noutput_dir: " << dir << "\n"
      << "schedule: {total_steps: " << T << ", phases: " << std::max(1, T / 4) << ", batch_size: 8}\n"
      << "loss: {type: dpo, beta: 0.1}\n"
      << "reference: {mode: behavior, logprob_source: learner}\n"
      << "lora: {members: 2, rank: 8, alpha: 16, dropout: 0.0, target_modules: [all-linear], merge_mode: mean_delta}\n"
      << "optimizer: {learning_rate: 0.001}\n"
      << "sampling: {max_new_tokens: 48, prompts_per_lease: 8}\n"
      << "model: {policy: " << sft << ", reward_model: " << rm << "}\n"
      << "data: {prompts: " << data << "/prompts.jsonl, format: jsonl}\n"
      << "annotation: {kind: rm, ties: random, pairs_per_lease: 16}\n"
      << "coordinator: {actor_lease_seconds: 30, heartbeat_seconds: 1}\n"
      << "learner: {world_size: 2, checkpoint_every: 10}\n"
      << "launch: {actors: 2, annotators: 1}\nseeds: {global: 1}\n";
  }
  if (!fs::exists(bpo_run + "/adapter/adapter_model.safetensors") &&
      !RunBpoStep("BPO with the distributed system (bpo local: coordinator, 2 actors, RM annotator, 2 learner ranks)",
            {"local", "--config=" + config}, dir + "/logs/local.log", /*show_output=*/true)) {
    return kExitFailure;
  }
  struct Row {
    std::string name, adapter;
    double win[2] = {0, 0}, diff[2] = {0, 0};  // reward model, oracle
  };
  const std::string judges[2] = {"rm:" + rm, "oracle:tldr"};
  std::vector<Row> rows = {{"SFT", ""}, {absl::StrCat("BPO (DPO loss, F = ", std::max(1, T / 4), ")"),
                                         bpo_run + "/adapter"}};
  for (Row& r : rows) {
    const std::string out = absl::StrCat(dir, "/eval-", r.adapter.empty() ? "sft" : "bpo", ".json");
    std::vector<std::string> args = {"eval", "--model=" + sft, "--test_prompts=" + data + "/test.jsonl",
                                     "--task=tldr", "--reward_model=" + rm, "--max_new_tokens=48",
                                     "--json_out=" + out};
    if (!r.adapter.empty()) args.push_back("--adapter=" + r.adapter);
    if (!RunBpoStep("evaluate " + r.name + " (bpo eval)", args, out + ".log")) return kExitFailure;
    std::ifstream in(out);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) return kExitFailure;
    for (int k = 0; k < 2; ++k) {
      r.win[k] = j["judges"][judges[k]]["win_rate"];
      r.diff[k] = j["judges"][judges[k]]["mean_reward_diff"];
    }
  }
  std::ostringstream table;
  table << "| policy | win rate (RM) | mean reward diff (RM) | win rate (oracle) | mean reward diff (oracle) |\n"
        << "|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    table << absl::StrFormat("| %s | %.3f | %.3f | %.3f | %.3f |\n", r.name, r.win[0], r.diff[0], r.win[1],
                             r.diff[1]);
  }
  const std::string report = dir + "/report.md";
  {
    std::ofstream md(report);
    md << "# bpo quickstart\n\nThe synthetic summarisation task (`tldr`): a 2-layer Llama and its "
       << "tokenizer trained from scratch (SFT), a DeBERTa-v3-style reward model trained on pairs "
       << "sampled from the SFT policy and labelled by the task's hidden oracle, then BPO (T = " << T
       << " steps, F = " << std::max(1, T / 4) << " annotation phases) with the reward model as "
       << "annotator.\n\nWin rate against the 100 test references (greedy, 48 new tokens): the "
       << "reward model judges as the annotator did; the hidden oracle shows whether what the RM "
       << "rewards is what the task wants (reward over-optimisation when they part).\n\n"
       << table.str() << "\nFiles: `eval-sft.json`, `eval-bpo.json` (every output and score), "
       << "`rm/train_rm.json` (the RM's held-out accuracy against the oracle), `bpo.yaml` (the run "
       << "config), `bpo/logs/` (each process's log), `bpo/steps.jsonl` (the learner's loss, margin and KL per step).\n";
  }
  std::cout << "\nwin rate against the test references (100 prompts, greedy):\n"
            << absl::StrFormat("  %-22s %13s %13s %15s %15s\n", "policy", "win (RM)", "diff (RM)",
                               "win (oracle)", "diff (oracle)");
  for (const Row& r : rows) {
    std::cout << absl::StrFormat("  %-22s %13.3f %13.3f %15.3f %15.3f\n", r.name, r.win[0], r.diff[0],
                                 r.win[1], r.diff[1]);
  }
  std::cout << absl::StrFormat("\nquickstart done in %.0f s. Report: %s (everything else is in %s).\n",
                               absl::ToDoubleSeconds(absl::Now() - t0), report, dir);
  return kExitOk;
}

}  // namespace

const Command& QuickstartCommand() {
  static const Command kCommand{
      "quickstart", "The whole method in minutes on a CPU: task, SFT, BPO run, evaluation.",
      "bpo quickstart [--quickstart_dir DIR]", __FILE__, 0, 0, &RunQuickstart};
  return kCommand;
}

}  // namespace bpo::cli
