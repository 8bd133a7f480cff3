// Batched generation from left-padded prompts with a KV cache: greedy or
// sampled (temperature, top-k, top-p as Hugging Face's warpers apply them),
// per-sequence EOS stops, several samples per prompt sharing one prefill,
// seeded and reproducible.
#ifndef BPO_MODEL_GENERATE_H_
#define BPO_MODEL_GENERATE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "model/causal_lm.h"

namespace bpo::model {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  bool greedy = false;
  double temperature = 1.0;
  int64_t top_k = 50;  // 0 disables
  double top_p = 1.0;  // 1 disables
  int64_t samples_per_prompt = 1;
  uint64_t seed = 0;
  std::vector<int64_t> eos_token_ids;  // empty: the model's
  int64_t pad_token_id = -1;           // -1: the model's, else 0
};

struct Generation {
  // Row r*samples_per_prompt + s is sample s of prompt r.
  at::Tensor tokens;    // [N, max_new_tokens] int64, pad after the end
  at::Tensor logprobs;  // [N, max_new_tokens] float32: log p(token) under the
                        // model (temperature 1, no filtering); 0 after the end
  at::Tensor lengths;   // [N] int64: generated tokens, EOS included
  at::Tensor finished;  // [N] bool: stopped at EOS
};

// prompt_ids [B, P] left-padded, prompt_mask [B, P] (1 on real tokens).
absl::StatusOr<Generation> Generate(const CausalLm& model, const at::Tensor& prompt_ids,
                                    const at::Tensor& prompt_mask, const GenerateOptions& options,
                                    const LinearAdapter* adapter = nullptr);

// Prompt ids longer than max_tokens keep their first id (BOS) and their last
// max_tokens - 1 ids, where the task instruction ("TL;DR:") sits.
std::vector<int64_t> KeepPromptTail(std::vector<int64_t> ids, int64_t max_tokens);

// The longest prompt that leaves room for max_new_tokens in the model's
// max_position_embeddings (when it has one), at most max_prompt_tokens.
// INVALID_ARGUMENT when fewer than 2 tokens are left.
absl::StatusOr<int64_t> PromptBudget(const CausalLmConfig& config, int64_t max_prompt_tokens,
                                     int64_t max_new_tokens);

struct LeftPadded {
  at::Tensor ids;   // [N, L] int64, pad on the left
  at::Tensor mask;  // [N, L] int64: 1 on real tokens
};
// Rows of ids left-padded to the longest with pad_id, as Generate takes them.
LeftPadded LeftPad(const std::vector<std::vector<int64_t>>& rows, int64_t pad_id);

// The warpers alone, for tests: logits [N, V] -> filtered logits (-inf out).
at::Tensor ApplyTopKTopP(const at::Tensor& logits, int64_t top_k, double top_p);

}  // namespace bpo::model

#endif  // BPO_MODEL_GENERATE_H_
