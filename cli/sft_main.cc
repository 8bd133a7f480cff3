// bpo sft: supervised fine-tuning on (prompt, response) demonstrations, from
// a loaded HF model or from scratch (a tokenizer trained on the data and a
// small random Llama); writes an HF model directory.
#include <filesystem>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "data/prompts.h"
#include "learner/sft.h"
#include "model/policy.h"
#include "model/tokenizer.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, sft_data, "", "JSONL demonstrations: {\"prompt\", \"response\"} a line.");
ABSL_FLAG(std::string, model_out, "", "Write the fine-tuned HF model directory here.");
ABSL_FLAG(std::string, init, "",
          "HF causal-LM directory to fine-tune (all weights); empty: train a tokenizer and a "
          "small Llama from scratch.");
ABSL_FLAG(int64_t, sft_steps, 300, "Optimizer steps.");
ABSL_FLAG(int64_t, sft_batch, 16, "Demonstrations per step.");
ABSL_FLAG(double, sft_lr, 1e-3, "Peak learning rate (linear warmup, then linear decay to 0).");
ABSL_FLAG(int64_t, sft_warmup, 20, "Warmup steps.");
ABSL_FLAG(int64_t, max_response_tokens, 64, "Longer responses are cut.");
ABSL_FLAG(int, vocab_size, 1024,
          "From scratch: largest tokenizer vocabulary (a small corpus gives fewer pieces; 256 byte "
          "pieces included).");
ABSL_FLAG(int64_t, hidden_size, 128, "From scratch: model width.");
ABSL_FLAG(int64_t, layers, 2, "From scratch: decoder layers.");
ABSL_FLAG(
    int64_t, sft_lora_rank, 0,
    "With --init: > 0 trains a LoRA of this rank on every linear layer (base frozen) and merges "
    "it into the written model; 0: full fine-tuning.");
ABSL_FLAG(uint64_t, sft_seed, 0, "Seeds the initial weights, the tokenizer and the data order.");

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ReadDemos(
    const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  absl::Status s =
      data::ForEachJsonlObject(path, [&](int, const nlohmann::json& j) -> absl::Status {
        if (!j.contains("prompt") || !j["prompt"].is_string() || !j.contains("response") ||
            !j["response"].is_string()) {
          return absl::InvalidArgumentError(
              "needs an object with string \"prompt\" and \"response\"");
        }
        out.emplace_back(j["prompt"].get<std::string>(), j["response"].get<std::string>());
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": has no demonstrations"));
  return out;
}

int RunSft(const std::vector<std::string>&) {
  const std::string out = absl::GetFlag(FLAGS_model_out);
  if (out.empty()) return Fail("sft", absl::InvalidArgumentError("--model_out names no directory"));
  auto demos = ReadDemos(absl::GetFlag(FLAGS_sft_data));
  if (!demos.ok()) return Fail("sft", demos.status());
  std::string src = absl::GetFlag(FLAGS_init);
  if (src.empty()) {
    // From scratch: tokenizer, then a random small Llama, both in `out`.
    std::vector<std::string> texts;
    for (const auto& [p, r] : *demos) texts.push_back(p + r);
    std::cout << "training a " << absl::GetFlag(FLAGS_vocab_size) << "-piece tokenizer on "
              << texts.size() << " demonstrations\n"
              << std::flush;
    if (auto s = learner::TrainTokenizer(texts, out, absl::GetFlag(FLAGS_vocab_size),
                                         absl::GetFlag(FLAGS_sft_seed));
        !s.ok()) {
      return Fail("sft", s);
    }
    // --vocab_size is an upper bound: a small corpus yields fewer pieces.
    auto tok = model::Tokenizer::Load(out + "/tokenizer.model");
    if (!tok.ok()) return Fail("sft", tok.status());
    learner::SmallLlamaOptions lo;
    lo.vocab_size = (*tok)->vocab_size();
    lo.hidden_size = absl::GetFlag(FLAGS_hidden_size);
    lo.layers = absl::GetFlag(FLAGS_layers);
    lo.heads = std::max<int64_t>(1, lo.hidden_size / 32);
    lo.kv_heads = lo.heads % 2 == 0 ? lo.heads / 2 : lo.heads;
    lo.intermediate_size = lo.hidden_size * 8 / 3 / 16 * 16;
    lo.max_positions = 512;
    lo.seed = absl::GetFlag(FLAGS_sft_seed);
    if (auto s = learner::WriteSmallLlama(out, lo); !s.ok()) return Fail("sft", s);
    src = out;
  }
  model::PolicyOptions po;
  auto policy = model::LoadPolicy(src, po);
  if (!policy.ok()) return Fail("sft", policy.status());
  learner::SftOptions so;
  so.steps = absl::GetFlag(FLAGS_sft_steps);
  so.batch_size = absl::GetFlag(FLAGS_sft_batch);
  so.learning_rate = absl::GetFlag(FLAGS_sft_lr);
  so.warmup_steps = absl::GetFlag(FLAGS_sft_warmup);
  so.max_response_tokens = absl::GetFlag(FLAGS_max_response_tokens);
  so.seed = absl::GetFlag(FLAGS_sft_seed);
  so.lora_rank = absl::GetFlag(FLAGS_sft_lora_rank);
  std::cout << absl::StrFormat(
                   "fine-tuning %s (%d parameters%s) on %d demonstrations for %d steps\n", src,
                   policy->model->NumParameters(),
                   so.lora_rank > 0
                       ? absl::StrCat(", LoRA rank ", so.lora_rank, " merged at the end")
                       : std::string(", all trained"),
                   demos->size(), so.steps)
            << std::flush;
  const int64_t every = std::max<int64_t>(1, so.steps / 20);
  auto log = learner::TrainSft(
      policy->model.get(), *policy->tokenizer, *demos, so, [&](const learner::SftStep& s) {
        if (s.step % every == 0 || s.step == 1) {
          std::cout << absl::StrFormat("step %d/%d  loss %.4f  lr %.2e  %.2f s\n", s.step, so.steps,
                                       s.loss, s.learning_rate, s.seconds)
                    << std::flush;
        }
      });
  if (!log.ok()) return Fail("sft", log.status());
  if (auto s = learner::SaveCausalLm(*policy->model, src, out); !s.ok()) return Fail("sft", s);
  std::cout << "wrote " << out << " (loss " << log->front().loss << " -> " << log->back().loss
            << ")\n";
  return kExitOk;
}

}  // namespace

const Command& SftCommand() {
  static const Command kCommand{
      "sft",
      "Supervised fine-tuning on demonstrations (or from scratch); writes an HF model.",
      "bpo sft --sft_data FILE.jsonl --model_out DIR [--init HF_DIR [--sft_lora_rank R]] "
      "[--sft_steps N]",
      __FILE__,
      0,
      0,
      &RunSft};
  return kCommand;
}

}  // namespace bpo::cli
