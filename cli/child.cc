#include "cli/child.h"

#include <filesystem>
#include <functional>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/subprocess.h"

namespace bpo::cli {

namespace {

// show_output: the child's output also reaches the terminal, indented.
bool Run(std::vector<std::string> args, const std::string& log, bool show_output) {
  args.insert(args.begin(), "bpo");
  std::cout << std::flush;
  bool line_start = true;
  std::function<void(std::string_view)> echo;
  if (show_output) {
    echo = [&](std::string_view chunk) {
      for (char c : chunk) {
        if (line_start) std::cout << "   ";
        std::cout << c;
        line_start = c == '\n';
      }
      std::cout << std::flush;
    };
  }
  const absl::StatusOr<int> code = RunToLog("/proc/self/exe", std::move(args), log, echo);
  return code.ok() && *code == 0;
}

}  // namespace

bool RunBpoStep(const std::string& what, std::vector<std::string> args, const std::string& log,
                bool show_output) {
  const absl::Time t0 = absl::Now();
  std::cout << "== " << what << (show_output ? "\n" : " ... ") << std::flush;
  const bool ok = Run(std::move(args), log, show_output);
  std::cout << (ok ? absl::StrFormat("done in %.0f s\n", absl::ToDoubleSeconds(absl::Now() - t0))
                   : absl::StrCat("FAILED; log: ", log, "\n"))
            << std::flush;
  return ok;
}

bool RunBpoQuietly(std::vector<std::string> args, const std::string& log) {
  return Run(std::move(args), log, false);
}

bool PrepareTask(const TaskSetup& t) {
  const std::string data = t.dir + "/data", sft = t.dir + "/sft", rm = t.dir + "/rm";
  if (!std::filesystem::exists(data + "/test.jsonl") &&
      !RunBpoStep(absl::StrCat(t.task, ": task data (bpo task generate)"),
                  {"task", "generate", "--task=" + t.task, "--out=" + data, "--sft_size=4000",
                   "--alignment_size=400", absl::StrCat("--test_size=", t.test_prompts), "--data_seed=1"},
                  t.log_prefix + "task.log")) {
    return false;
  }
  if (!std::filesystem::exists(sft + "/model.safetensors") &&
      !RunBpoStep(absl::StrCat(t.task, ": tokenizer + SFT policy from scratch (bpo sft)"),
                  {"sft", "--sft_data=" + data + "/sft.jsonl", "--model_out=" + sft,
                   absl::StrCat("--sft_steps=", t.sft_steps), "--vocab_size=512", "--hidden_size=128",
                   "--layers=2", "--sft_lr=2e-3"},
                  t.log_prefix + "sft.log", t.show_output)) {
    return false;
  }
  if (!std::filesystem::exists(rm + "/train_rm.json") &&
      !RunBpoStep(absl::StrCat(t.task, ": reward model, DeBERTa-v3 architecture, Bradley-Terry on "
                               "oracle-labelled samples (bpo train-rm)"),
                  {"train-rm", "--policy=" + sft, "--rm_prompts=" + data + "/sft.jsonl", "--task=" + t.task,
                   absl::StrCat("--rm_pairs=", t.rm_pairs), "--rm_out=" + rm,
                   absl::StrCat("--rm_steps=", t.rm_steps),
                   absl::StrCat("--rm_max_new_tokens=", t.max_new_tokens)},
                  t.log_prefix + "train-rm.log", t.show_output)) {
    return false;
  }
  return true;
}

}  // namespace bpo::cli
