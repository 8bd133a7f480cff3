#include "experiments/task_setup.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "experiments/child.h"

namespace bpo::experiments {

absl::Status PrepareTask(const TaskSetup& t) {
  const std::string data = t.dir + "/data", sft = t.dir + "/sft", rm = t.dir + "/rm";
  if (!std::filesystem::exists(data + "/test.jsonl")) {
    absl::Status s = RunBpoStep(
        absl::StrCat(t.task, ": task data (bpo task generate)"),
        {"task", "generate", "--task=" + t.task, "--out=" + data, "--sft_size=4000",
         "--alignment_size=400", absl::StrCat("--test_size=", t.test_prompts), "--data_seed=1"},
        t.log_prefix + "task.log");
    if (!s.ok()) return s;
  }
  if (!std::filesystem::exists(sft + "/model.safetensors")) {
    absl::Status s =
        RunBpoStep(absl::StrCat(t.task, ": tokenizer + SFT policy from scratch (bpo sft)"),
                   {"sft", "--sft_data=" + data + "/sft.jsonl", "--model_out=" + sft,
                    absl::StrCat("--sft_steps=", t.sft_steps), "--vocab_size=512",
                    "--hidden_size=128", "--layers=2", "--sft_lr=2e-3"},
                   t.log_prefix + "sft.log", t.show_output);
    if (!s.ok()) return s;
  }
  if (!std::filesystem::exists(rm + "/train_rm.json")) {
    absl::Status s =
        RunBpoStep(absl::StrCat(t.task,
                                ": reward model, DeBERTa-v3 architecture, Bradley-Terry on "
                                "oracle-labelled samples (bpo train-rm)"),
                   {"train-rm", "--policy=" + sft, "--rm_prompts=" + data + "/sft.jsonl",
                    "--task=" + t.task, absl::StrCat("--rm_pairs=", t.rm_pairs), "--rm_out=" + rm,
                    absl::StrCat("--rm_steps=", t.rm_steps),
                    absl::StrCat("--rm_max_new_tokens=", t.max_new_tokens)},
                   t.log_prefix + "train-rm.log", t.show_output);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace bpo::experiments
