// `bpo train-rm`: a DeBERTa-v3-architecture reward model trained with the
// Bradley–Terry loss on preference pairs (the paper's "RM-deberta" preference
// simulator, at small scale). The pairs come from a JSONL file, or are
// sampled here: two responses from a policy per prompt, ordered by a
// synthetic task's hidden oracle (ties and identical pairs dropped). A
// held-out share of the pairs measures how often the RM agrees with the
// labels. Progress on stdout.
#ifndef BPO_EXPERIMENTS_TRAIN_RM_H_
#define BPO_EXPERIMENTS_TRAIN_RM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "learner/reward_training.h"

namespace bpo::experiments {

// Where the pairs come from when no preference file is given.
struct OracleSampling {
  std::string task;     // names the oracle (tasks::MakeTask)
  std::string policy;   // HF model directory to sample from
  std::string prompts;  // JSONL, a string "prompt" per line
  int pairs = 2000;     // samplings: every distinct prompt once before repeats
  int64_t max_new_tokens = 48;
  int64_t max_prompt_tokens = 0;  // 0: no limit
  double temperature = 1.0;
};

struct TrainRmOptions {
  std::string out;          // the reward model (HF directory) goes here
  std::string preferences;  // JSONL {"prompt", "chosen", "rejected"}; empty: sample
  OracleSampling sampling;
  std::string init;  // HF DeBERTa-v2/v3 RM to fine-tune; empty: from scratch
  int64_t steps = 600;
  int64_t batch = 16;
  double learning_rate = 5e-4;  // peak; linear warmup, then linear decay to 0
  int64_t warmup = 30;
  int64_t max_length = 512;  // tokens of [CLS] prompt [SEP] response [SEP]
  double heldout = 0.1;      // share held out, in [0, 1)
  // From scratch: tokenizer vocabulary, width and depth.
  int vocab_size = 1024;
  int64_t hidden_size = 128;
  int64_t layers = 2;
  uint64_t seed = 0;  // sampling, the split, the initial weights and the order
};

// Pairs sampled from the policy and ordered by the task's oracle.
absl::StatusOr<std::vector<learner::PreferencePair>> SampleOraclePairs(
    const OracleSampling& options, uint64_t seed);

// Trains and writes the reward model to options.out, with train_rm.json
// (pair counts, final loss, held-out accuracy) beside it.
absl::Status TrainRm(const TrainRmOptions& options);

}  // namespace bpo::experiments

#endif  // BPO_EXPERIMENTS_TRAIN_RM_H_
