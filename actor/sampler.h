// The actor's sampling step: two responses per prompt from the behavior
// policy (base model + a snapshot's merged adapter), one batched generate with
// the prompt prefill shared by both samples, with the behavior log-probs the
// learner uses as BPO's reference.
#ifndef BPO_ACTOR_SAMPLER_H_
#define BPO_ACTOR_SAMPLER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/common.pb.h"
#include "bpo/v1/config.pb.h"
#include "bpo/v1/coordinator.pb.h"
#include "model/causal_lm.h"
#include "model/tokenizer.h"

namespace bpo::actor {

struct SamplerOptions {
  double temperature = 1.0;
  int64_t top_k = 50;
  double top_p = 1.0;
  int64_t max_new_tokens = 128;
  // Longer prompts keep BOS and their last tokens; also capped so that
  // prompt + response fit the model's max_position_embeddings.
  int64_t max_prompt_tokens = 512;
  // Identical responses: drop the pair (the authors' choice) or sample the
  // prompt again up to max_resamples times, then drop.
  bool resample_identical = false;
  int max_resamples = 2;
  uint64_t seed = 0;
};

SamplerOptions SamplerOptionsFrom(const bpo::v1::SamplingConfig& sampling, uint64_t seed);

struct SampledBatch {
  std::vector<bpo::v1::SampledPair> pairs;  // run_id, pair_id, version, prompt, tokens, logprobs
  std::vector<std::string> dropped;         // pair ids whose responses stayed identical
  int64_t generated_tokens = 0;
  int resamples = 0;
};

// Samples every prompt of `work` with `adapter` (null: the base policy) and
// tags each pair with `behavior_version`. Deterministic in options.seed and
// the pair ids. Response token ids end with EOS when the response finished;
// behavior_logprob is the sum of behavior_token_logprobs over them.
absl::StatusOr<SampledBatch> SamplePairs(const model::CausalLm& model,
                                         const model::Tokenizer& tokenizer,
                                         const model::LinearAdapter* adapter,
                                         const std::vector<bpo::v1::PromptWork>& work,
                                         uint64_t behavior_version, const SamplerOptions& options);

}  // namespace bpo::actor

#endif  // BPO_ACTOR_SAMPLER_H_
