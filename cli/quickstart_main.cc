// bpo quickstart: the whole method on a laptop CPU, nothing downloaded.
//   1. a synthetic task's data (bpo task generate),
//   2. a tokenizer and a small policy trained from scratch (bpo sft),
//   3. a BPO run through the distributed system (bpo local: coordinator,
//      2 actors, the task's oracle as annotator, 2 learner ranks),
//   4. evaluation of SFT and BPO against the test references (bpo eval).
// Each step is a child `bpo` process with its log in the run directory; a
// step whose output exists is skipped, so a rerun resumes.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/command.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, quickstart_dir, "runs/quickstart", "Where the quickstart writes everything.");
ABSL_FLAG(int64_t, quickstart_sft_steps, 1500, "SFT steps.");
ABSL_FLAG(int, quickstart_bpo_steps, 40, "BPO learner steps T (F = T/4 annotation phases).");

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;

// Runs `bpo args...` with output to `log`; true on exit status 0.
bool Step(const std::string& what, std::vector<std::string> args, const std::string& log,
          bool show_output = false) {
  const absl::Time t0 = absl::Now();
  std::cout << "== " << what << (show_output ? "\n" : " ... ") << std::flush;
  args.insert(args.begin(), "bpo");
  const pid_t pid = fork();
  if (pid == 0) {
    if (!show_output) {
      std::FILE* f = std::freopen(log.c_str(), "w", stdout);
      (void)f;
      dup2(1, 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  std::cout << (ok ? absl::StrFormat("done in %.0f s\n", absl::ToDoubleSeconds(absl::Now() - t0))
                   : absl::StrCat("FAILED; log: ", log, "\n"))
            << std::flush;
  return ok;
}

int RunQuickstart(const std::vector<std::string>&) {
  const std::string dir = fs::absolute(absl::GetFlag(FLAGS_quickstart_dir)).lexically_normal().string();
  fs::create_directories(dir + "/logs");
  const absl::Time t0 = absl::Now();
  const std::string data = dir + "/data", sft = dir + "/sft", bpo_run = dir + "/bpo";
  std::cout << "bpo quickstart in " << dir << ": the dialogue task, a policy trained from "
            << "scratch, BPO through the distributed system, evaluation\n";
  if (!fs::exists(data + "/test.jsonl") &&
      !Step("task data (bpo task generate)",
            {"task", "generate", "--task=dialogue", "--out=" + data, "--sft_size=4000",
             "--alignment_size=400", "--test_size=100", "--data_seed=1"},
            dir + "/logs/task.log")) {
    return kExitFailure;
  }
  if (!fs::exists(sft + "/model.safetensors") &&
      !Step("tokenizer + SFT policy from scratch (bpo sft)",
            {"sft", "--sft_data=" + data + "/sft.jsonl", "--model_out=" + sft,
             absl::StrCat("--sft_steps=", absl::GetFlag(FLAGS_quickstart_sft_steps)),
             "--vocab_size=512", "--hidden_size=128", "--layers=2", "--sft_lr=2e-3"},
            dir + "/logs/sft.log")) {
    return kExitFailure;
  }
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
      << "sampling: {max_new_tokens: 16, prompts_per_lease: 8}\n"
      << "model: {policy: " << sft << "}\n"
      << "data: {prompts: " << data << "/prompts.jsonl, format: jsonl}\n"
      << "annotation: {kind: rule, rule: \"oracle:dialogue\", ties: random, pairs_per_lease: 16}\n"
      << "coordinator: {actor_lease_seconds: 30, heartbeat_seconds: 1}\n"
      << "learner: {world_size: 2, checkpoint_every: 10}\n"
      << "launch: {actors: 2, annotators: 1}\nseeds: {global: 1}\n";
  }
  if (!fs::exists(bpo_run + "/adapter/adapter_model.safetensors") &&
      !Step("BPO with the distributed system (bpo local: coordinator, 2 actors, oracle annotator, 2 learner ranks)",
            {"local", "--config=" + config}, dir + "/logs/local.log", /*show_output=*/true)) {
    return kExitFailure;
  }
  struct Row {
    std::string name, adapter;
    double win = 0, diff = 0;
  };
  std::vector<Row> rows = {{"SFT", ""}, {"BPO (DPO loss, F = T/4)", bpo_run + "/adapter"}};
  for (Row& r : rows) {
    const std::string out = absl::StrCat(dir, "/eval-", r.adapter.empty() ? "sft" : "bpo", ".json");
    std::vector<std::string> args = {"eval", "--model=" + sft, "--test_prompts=" + data + "/test.jsonl",
                                     "--task=dialogue", "--max_new_tokens=16", "--json_out=" + out};
    if (!r.adapter.empty()) args.push_back("--adapter=" + r.adapter);
    if (!Step("evaluate " + r.name + " (bpo eval)", args, out + ".log")) return kExitFailure;
    std::ifstream in(out);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) return kExitFailure;
    r.win = j["judges"]["oracle:dialogue"]["win_rate"];
    r.diff = j["judges"]["oracle:dialogue"]["mean_reward_diff"];
  }
  std::cout << "\nwin rate against the test references (oracle judge, 100 prompts, greedy):\n"
            << absl::StrFormat("  %-26s %9s %18s\n", "policy", "win rate", "mean reward diff");
  for (const Row& r : rows) std::cout << absl::StrFormat("  %-26s %9.3f %18.4f\n", r.name, r.win, r.diff);
  std::cout << absl::StrFormat("\nquickstart done in %.0f s. Everything is in %s (eval-*.json: per prompt "
                               "outputs and scores; bpo/logs: every process's log).\n",
                               absl::ToDoubleSeconds(absl::Now() - t0), dir);
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
