// bpo train-rm: flags for experiments::TrainRm (experiments/train_rm.h), a
// DeBERTa-v3 reward model trained with the Bradley–Terry loss on preference
// pairs from a file or sampled from a policy and labelled by a task's oracle.
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "experiments/train_rm.h"

ABSL_FLAG(std::string, preferences, "",
          "JSONL preference pairs {\"prompt\", \"chosen\", \"rejected\"}; empty: sample them from "
          "--policy on --rm_prompts and label them with --task's oracle.");
ABSL_FLAG(std::string, rm_prompts, "",
          "JSONL prompts (\"prompt\" per line, e.g. a task's sft.jsonl) to sample pairs on.");
ABSL_FLAG(int, rm_pairs, 2000,
          "How many pairs to sample (one per distinct prompt first, then prompts again with new "
          "samples); ties and identical pairs are then dropped.");
ABSL_FLAG(int64_t, rm_max_new_tokens, 48, "Sampling: longest response.");
ABSL_FLAG(double, rm_temperature, 1.0, "Sampling temperature.");
ABSL_FLAG(std::string, rm_out, "", "Write the reward model (HF directory) here.");
ABSL_FLAG(std::string, rm_init, "",
          "HF DeBERTa-v2/v3 reward model directory to fine-tune; empty: a tokenizer and a small "
          "DeBERTa-v3-style model from scratch.");
ABSL_FLAG(int64_t, rm_steps, 600, "Optimizer steps.");
ABSL_FLAG(int64_t, rm_batch, 16, "Pairs per step.");
ABSL_FLAG(double, rm_lr, 5e-4, "Peak learning rate (linear warmup, then linear decay to 0).");
ABSL_FLAG(int64_t, rm_warmup, 30, "Warmup steps.");
ABSL_FLAG(int64_t, rm_max_length, 512, "Tokens of [CLS] prompt [SEP] response [SEP].");
ABSL_FLAG(double, rm_heldout, 0.1, "Share of the pairs held out to measure accuracy.");
ABSL_FLAG(int, rm_vocab_size, 1024, "From scratch: largest tokenizer vocabulary.");
ABSL_FLAG(int64_t, rm_hidden_size, 128, "From scratch: model width.");
ABSL_FLAG(int64_t, rm_layers, 2, "From scratch: encoder layers.");
ABSL_FLAG(uint64_t, rm_seed, 0, "Seeds sampling, the split, the initial weights and the order.");

namespace bpo::cli {
namespace {

int RunTrainRm(const std::vector<std::string>&) {
  experiments::TrainRmOptions o;
  o.out = absl::GetFlag(FLAGS_rm_out);
  o.preferences = absl::GetFlag(FLAGS_preferences);
  o.sampling.task = absl::GetFlag(FLAGS_task);
  o.sampling.policy = absl::GetFlag(FLAGS_policy);
  o.sampling.prompts = absl::GetFlag(FLAGS_rm_prompts);
  o.sampling.pairs = absl::GetFlag(FLAGS_rm_pairs);
  o.sampling.max_new_tokens = absl::GetFlag(FLAGS_rm_max_new_tokens);
  o.sampling.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  o.sampling.temperature = absl::GetFlag(FLAGS_rm_temperature);
  o.init = absl::GetFlag(FLAGS_rm_init);
  o.steps = absl::GetFlag(FLAGS_rm_steps);
  o.batch = absl::GetFlag(FLAGS_rm_batch);
  o.learning_rate = absl::GetFlag(FLAGS_rm_lr);
  o.warmup = absl::GetFlag(FLAGS_rm_warmup);
  o.max_length = absl::GetFlag(FLAGS_rm_max_length);
  o.heldout = absl::GetFlag(FLAGS_rm_heldout);
  o.vocab_size = absl::GetFlag(FLAGS_rm_vocab_size);
  o.hidden_size = absl::GetFlag(FLAGS_rm_hidden_size);
  o.layers = absl::GetFlag(FLAGS_rm_layers);
  o.seed = absl::GetFlag(FLAGS_rm_seed);
  if (o.out.empty())
    return Fail("train-rm", absl::InvalidArgumentError("--rm_out names no directory"));
  if (!(o.heldout >= 0 && o.heldout < 1)) {
    return Fail("train-rm", absl::InvalidArgumentError(
                                absl::StrCat("--rm_heldout must be in [0, 1), got ", o.heldout)));
  }
  if (o.preferences.empty() && o.sampling.task.empty()) {
    return Fail("train-rm",
                absl::InvalidArgumentError(
                    "without --preferences, --task names the oracle that labels sampled pairs"));
  }
  if (o.preferences.empty() && (o.sampling.policy.empty() || o.sampling.prompts.empty())) {
    return Fail(
        "train-rm",
        absl::InvalidArgumentError(
            "without --preferences, --policy and --rm_prompts say what to sample pairs from"));
  }
  if (absl::Status s = experiments::TrainRm(o); !s.ok()) return Fail("train-rm", s);
  return kExitOk;
}

}  // namespace

const Command& TrainRmCommand() {
  static const Command kCommand{"train-rm",
                                "Bradley-Terry training of a DeBERTa-v3 reward model on preference "
                                "pairs; writes an HF model.",
                                "bpo train-rm --rm_out DIR (--preferences FILE.jsonl | --policy "
                                "DIR --rm_prompts FILE --task T)",
                                __FILE__,
                                0,
                                0,
                                &RunTrainRm,
                                {},
                                {"policy", "task", "max_prompt_tokens"}};
  return kCommand;
}

}  // namespace bpo::cli
