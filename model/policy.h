// A policy as users point bpo at it: a Hugging Face causal-LM directory, its
// tokenizer, and optionally LoRA adapters in PEFT format (one directory = one
// adapter; several = an ensemble, merged for sampling).
#ifndef BPO_MODEL_POLICY_H_
#define BPO_MODEL_POLICY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/causal_lm.h"
#include "model/lora.h"
#include "model/tokenizer.h"

namespace bpo::model {

struct PolicyOptions {
  LoadOptions load;
  std::vector<std::string> adapters;  // PEFT adapter directories
  MergeMode merge_mode = MergeMode::kPeftLinear;
  std::string tokenizer;  // empty: the model directory's
};

struct Policy {
  std::unique_ptr<CausalLm> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<LoraEnsemble> lora;  // null without adapters
  std::unique_ptr<MergedLora> merged;  // the adapter to run with, or null

  const LinearAdapter* adapter() const { return merged.get(); }
};

// Loads and cross-checks everything (a tokenizer whose vocabulary does not fit
// the model's embedding is an error naming both files).
absl::StatusOr<Policy> LoadPolicy(const std::string& dir, const PolicyOptions& options);

// "float32"/"bfloat16" and "cpu"/"cuda[:N]" as flags and configs spell them.
absl::StatusOr<LoadOptions> ParseLoadOptions(const std::string& dtype, const std::string& device);

}  // namespace bpo::model

#endif  // BPO_MODEL_POLICY_H_
