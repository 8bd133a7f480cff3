// Checkpoint tools: bpo model info, bpo generate and bpo logprobs (also as
// bpo model generate|logprobs; the policy code is model/policy_text.h). Their common flags are in
// shared_flags.cc.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "common/status_macros.h"
#include "data/prompts.h"
#include "model/policy_text.h"

ABSL_FLAG(std::string, prompts, "", "JSONL file with one {\"prompt\": ...} object a line.");
ABSL_FLAG(bool, greedy, false, "Greedy decoding (ignores temperature, top_k, top_p).");
ABSL_FLAG(double, temperature, 1.0, "Sampling temperature.");
ABSL_FLAG(int64_t, top_k, 50, "Top-k filtering; 0 disables.");
ABSL_FLAG(double, top_p, 1.0, "Nucleus (top-p) filtering; 1 disables.");
ABSL_FLAG(int64_t, samples, 1, "Samples per prompt (they share the prompt's prefill).");
ABSL_FLAG(uint64_t, seed, 0, "Sampling seed.");

namespace bpo::cli {
namespace {

using nlohmann::json;

absl::StatusOr<model::Policy> LoadPolicyFromFlags() {
  if (absl::GetFlag(FLAGS_model).empty()) return absl::InvalidArgumentError("--model is required");
  model::PolicyOptions options;
  BPO_ASSIGN_OR_RETURN(options.load, LoadOptionsFromFlags());
  BPO_ASSIGN_OR_RETURN(options.merge_mode, MergeModeFromFlags());
  options.adapters = AdaptersFromFlag(absl::GetFlag(FLAGS_adapter));
  return model::LoadPolicy(absl::GetFlag(FLAGS_model), options);
}

int RunModelInfo(const std::vector<std::string>& args) {
  auto out = model::DescribeModelDirectory(args[0]);
  if (!out.ok()) return Fail("model info", out.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << out->dump() << "\n";
    return kExitOk;
  }
  for (const auto& [k, v] : out->items()) {
    std::cout << absl::StrFormat("%-18s %s\n", k, v.is_string() ? v.get<std::string>() : v.dump());
  }
  return kExitOk;
}

int RunGenerate(const std::vector<std::string>&) {
  std::vector<std::string> prompts;
  if (!absl::GetFlag(FLAGS_prompts).empty()) {
    auto rows = data::ReadJsonlStringFields(absl::GetFlag(FLAGS_prompts), {"prompt"});
    if (!rows.ok()) return Fail("generate", rows.status());
    for (auto& r : *rows) prompts.push_back(std::move(r[0]));
  } else if (!absl::GetFlag(FLAGS_prompt).empty()) {
    prompts.push_back(absl::GetFlag(FLAGS_prompt));
  } else {
    return Fail("generate", absl::InvalidArgumentError("give --prompt or --prompts"));
  }
  auto policy = LoadPolicyFromFlags();
  if (!policy.ok()) return Fail("generate", policy.status());
  model::GenerateOptions g;
  g.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  g.greedy = absl::GetFlag(FLAGS_greedy);
  g.temperature = absl::GetFlag(FLAGS_temperature);
  g.top_k = absl::GetFlag(FLAGS_top_k);
  g.top_p = absl::GetFlag(FLAGS_top_p);
  g.samples_per_prompt = absl::GetFlag(FLAGS_samples);
  g.seed = absl::GetFlag(FLAGS_seed);
  const bool as_json = absl::GetFlag(FLAGS_json);
  const bool separate = g.samples_per_prompt > 1 || prompts.size() > 1;
  absl::Status s = model::GenerateTexts(
      *policy, prompts, g, absl::GetFlag(FLAGS_batch_size), [&](const model::GeneratedText& t) {
        if (!as_json) {
          std::cout << prompts[t.prompt_index] << t.text << "\n" << (separate ? "---\n" : "");
          return;
        }
        std::cout << json{{"prompt_index", t.prompt_index},
                          {"sample", t.sample},
                          {"text", t.text},
                          {"token_ids", t.token_ids},
                          {"token_logprobs", t.token_logprobs},
                          {"logprob", t.logprob},
                          {"finished", t.finished}}
                         .dump()
                  << "\n";
      });
  return s.ok() ? kExitOk : Fail("generate", s);
}

int RunLogprobs(const std::vector<std::string>&) {
  const std::string response = absl::GetFlag(FLAGS_response);
  if (response.empty())
    return Fail("logprobs", absl::InvalidArgumentError("--response is required"));
  auto policy = LoadPolicyFromFlags();
  if (!policy.ok()) return Fail("logprobs", policy.status());
  auto lp = model::ScoreResponse(*policy, absl::GetFlag(FLAGS_prompt), response);
  if (!lp.ok()) return Fail("logprobs", lp.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << json{{"sum", lp->sum},
                      {"mean", lp->mean},
                      {"tokens", lp->tokens},
                      {"token_ids", lp->token_ids},
                      {"token_logprobs", lp->token_logprobs}}
                     .dump()
              << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("sum %.6f  mean %.6f  over %d response tokens (EOS included)\n",
                               lp->sum, lp->mean, lp->tokens);
  for (size_t i = 0; i < lp->token_ids.size(); ++i) {
    std::cout << absl::StrFormat("%6d  %-20s %.6f\n", lp->token_ids[i],
                                 policy->tokenizer->Decode({lp->token_ids[i]}, false),
                                 lp->token_logprobs[i]);
  }
  return kExitOk;
}

}  // namespace

const Command& ModelInfoCommand() {
  static const Command kCommand{"model info",
                                "Validate a Hugging Face model directory and print what it holds.",
                                "bpo model info DIR [--json]",
                                SharedFlagsFile(),
                                1,
                                1,
                                &RunModelInfo,
                                {"json"}};
  return kCommand;
}

const Command& GenerateCommand() {
  static const Command kCommand{
      "generate",
      "Generate continuations of prompts with a policy (and LoRA adapters).",
      "bpo generate --model DIR [--adapter DIR,...] --prompt TEXT | --prompts FILE.jsonl [flags]",
      __FILE__,
      0,
      0,
      &RunGenerate,
      {"prompts", "greedy", "temperature", "top_k", "top_p", "samples", "seed"},
      {"model", "adapter", "merge_mode", "prompt", "max_new_tokens", "batch_size", "dtype",
       "device", "json"},
      {"model generate"}};
  return kCommand;
}

const Command& LogprobsCommand() {
  static const Command kCommand{
      "logprobs",
      "Sequence and per-token log-probs of a response under a policy.",
      "bpo logprobs --model DIR [--adapter DIR,...] --prompt P --response R [--json]",
      SharedFlagsFile(),
      0,
      0,
      &RunLogprobs,
      {"model", "adapter", "merge_mode", "prompt", "response", "dtype", "device", "json"},
      {},
      {"model logprobs"}};
  return kCommand;
}

}  // namespace bpo::cli
