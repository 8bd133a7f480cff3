// Scoring (prompt, response) text pairs with a DeBERTa-v3 reward model, as the
// paper's annotator does: [CLS] prompt [SEP] response [SEP], truncated to a
// max length the way HF's tokenizer does, batched.
#ifndef BPO_MODEL_REWARD_H_
#define BPO_MODEL_REWARD_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "model/deberta.h"
#include "model/tokenizer.h"

namespace bpo::model {

struct RewardModel {
  std::unique_ptr<DebertaRewardModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

absl::StatusOr<RewardModel> LoadRewardModel(const std::string& dir, const LoadOptions& options);

// [CLS] prompt [SEP] response [SEP] rows, right-padded with the tokenizer's
// pad id: ids, attention mask and token types, [N, longest] int64 (CPU).
struct EncodedPairs {
  at::Tensor ids, mask, types;
};
absl::StatusOr<EncodedPairs> EncodePairs(
    const Tokenizer& tokenizer, const std::vector<std::pair<std::string, std::string>>& pairs,
    int64_t max_length);

// Rewards of (prompt, response) pairs, `batch_size` at a time.
absl::StatusOr<std::vector<double>> ScorePairs(
    const RewardModel& rm, const std::vector<std::pair<std::string, std::string>>& pairs,
    int64_t max_length, int64_t batch_size = 16);

}  // namespace bpo::model

#endif  // BPO_MODEL_REWARD_H_
