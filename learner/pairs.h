// Preference pairs from a JSONL file (offline mode and tests): one object a
// line with "prompt", "chosen", "rejected" and optionally the behavior
// policy's sequence log-probs "chosen_logprob" / "rejected_logprob".
#ifndef BPO_LEARNER_PAIRS_H_
#define BPO_LEARNER_PAIRS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/common.pb.h"
#include "learner/trainer.h"
#include "model/tokenizer.h"

namespace bpo::learner {

struct TextPair {
  std::string prompt, chosen, rejected;
  std::optional<double> chosen_logprob, rejected_logprob;
};

// Errors name the file and line.
absl::StatusOr<std::vector<TextPair>> ReadPairsJsonl(const std::string& path);

// [BOS] prompt (last max_prompt_tokens kept) + response (first
// max_response_tokens kept) + [EOS], right padded; chosen rows first.
PairBatch TokenizePairs(const model::Tokenizer& tokenizer, const std::vector<TextPair>& pairs,
                        int64_t max_prompt_tokens, int64_t max_response_tokens,
                        uint64_t behavior_version);

// The batch of annotated pairs as the actors sampled them: token ids are used
// as they are (no re-tokenisation), the label's winner is the chosen row, and
// each pair keeps its behavior version. behavior_logps (the sums) is set when
// every response carries the actor's per-token behavior log-probs. Prompts longer than
// max_prompt_tokens keep BOS and their last tokens. INVALID_ARGUMENT for a
// label without a winner or empty token ids.
absl::StatusOr<PairBatch> BatchFromAnnotated(const std::vector<bpo::v1::AnnotatedPair>& pairs,
                                             int64_t pad_id, int64_t max_prompt_tokens);

}  // namespace bpo::learner

#endif  // BPO_LEARNER_PAIRS_H_
