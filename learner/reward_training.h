// Reward-model training as the paper's preference simulator is made
// ("RM-deberta"): a DeBERTa-v3-architecture sequence classifier with one
// logit, trained with the Bradley–Terry loss -log sigmoid(r(x, y_w) -
// r(x, y_l)) on preference pairs, every weight trained (AdamW, linear warmup
// then decay, global-norm clipping). Also what training one from scratch
// needs: a DeBERTa-v3-style SentencePiece tokenizer ([PAD] [CLS] [SEP] [UNK]
// [MASK]) and a small random DebertaV2ForSequenceClassification, both in
// Hugging Face's layout, so `bpo annotator --kind rm` and `bpo eval
// --reward_model` load the result like any downloaded RM.
#ifndef BPO_LEARNER_REWARD_TRAINING_H_
#define BPO_LEARNER_REWARD_TRAINING_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/reward.h"

namespace bpo::learner {

struct PreferencePair {
  std::string prompt;
  std::string chosen;
  std::string rejected;
};

// Reads {"prompt", "chosen", "rejected"} JSONL (one pair a line);
// INVALID_ARGUMENT naming the file and line for a malformed line, and for a
// file without pairs.
absl::StatusOr<std::vector<PreferencePair>> ReadPreferencePairs(const std::string& path);
absl::Status WritePreferencePairs(const std::vector<PreferencePair>& pairs,
                                  const std::string& path);

struct SmallDebertaOptions {
  int64_t vocab_size = 1024;
  int64_t hidden_size = 128;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t intermediate_size = 512;
  int64_t max_positions = 512;
  int64_t position_buckets = 64;  // DeBERTa-v3 uses 256 with 512 positions
  uint64_t seed = 0;
};

// <dir>/config.json (DebertaV2ForSequenceClassification, num_labels 1,
// relative attention with log buckets, c2p and p2c, shared attention keys,
// layer-normed relative embeddings: DeBERTa-v3's options) and
// <dir>/model.safetensors with weights ~ N(0, 0.02), biases 0, norms 1 (HF's
// initializer_range init). The tokenizer (spm.model) is written separately.
absl::Status WriteSmallDeberta(const std::string& dir, const SmallDebertaOptions& options);

struct RewardTrainOptions {
  int64_t steps = 300;
  int64_t batch_size = 16;  // pairs per step (2 x batch_size sequences)
  double learning_rate = 1e-4;
  int64_t warmup_steps = 20;
  double grad_clip = 1.0;
  double weight_decay = 0.0;
  int64_t max_length = 512;  // [CLS] prompt [SEP] response [SEP], HF longest_first
  uint64_t seed = 0;         // the order of the pairs
};

struct RewardStep {
  int64_t step = 0;      // 1-based
  double loss = 0;       // mean -log sigmoid(margin) over the batch
  double accuracy = 0;   // fraction of the batch with r(chosen) > r(rejected)
  double margin = 0;     // mean r(chosen) - r(rejected)
  double grad_norm = 0;  // before clipping
  double learning_rate = 0;
  double seconds = 0;
};

// Trains every weight of `model` in place. INVALID_ARGUMENT for no pairs or a
// model without a DeBERTa tokenizer.
absl::StatusOr<std::vector<RewardStep>> TrainRewardModel(
    const model::RewardModel& rm, const std::vector<PreferencePair>& pairs,
    const RewardTrainOptions& options,
    const std::function<void(const RewardStep&)>& on_step = nullptr);

// The Bradley–Terry loss and accuracy of `pairs` under `rm` (no training),
// `batch_size` pairs at a time. Ties (equal rewards) count as wrong.
struct PairwiseEval {
  double loss = 0;
  double accuracy = 0;
  int64_t pairs = 0;
};
absl::StatusOr<PairwiseEval> EvaluatePairs(const model::RewardModel& rm,
                                           const std::vector<PreferencePair>& pairs,
                                           int64_t max_length, int64_t batch_size = 32);

// Writes the model's weights to <out_dir>/model.safetensors and copies the
// other files of `src_dir` (config.json, spm.model, tokenizer files) that
// `out_dir` lacks.
absl::Status SaveRewardModel(const model::DebertaRewardModel& model, const std::string& src_dir,
                             const std::string& out_dir);

}  // namespace bpo::learner

#endif  // BPO_LEARNER_REWARD_TRAINING_H_
