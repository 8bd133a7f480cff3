// Policy evaluation as in the paper: greedy decoding on test prompts, each
// output scored against the prompt's human(-like) reference by a reward
// model and/or a synthetic task's hidden oracle; win rate (strictly higher
// score) and mean reward difference; head-to-head between two policies.
#ifndef BPO_EVAL_EVALUATE_H_
#define BPO_EVAL_EVALUATE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/common.pb.h"
#include "model/causal_lm.h"
#include "model/reward.h"
#include "model/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tasks/synthetic.h"

namespace bpo::eval {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  int64_t batch_size = 16;
  int64_t max_prompt_tokens = 512;
};

// Greedy outputs (text, EOS removed) for every prompt, batch_size at a time.
absl::StatusOr<std::vector<std::string>> GreedyOutputs(const model::CausalLm& model,
                                                       const model::Tokenizer& tokenizer,
                                                       const model::LinearAdapter* adapter,
                                                       const std::vector<std::string>& prompts,
                                                       const GenerateOptions& options);

// `samples` sampled outputs per prompt (temperature 1, no top-k/top-p: the
// policy's own distribution), seeded: row i * samples + s is sample s of
// prompt i. Shows how the whole distribution moved where greedy outputs of a
// small model sit on a few modes.
absl::StatusOr<std::vector<std::string>> SampledOutputs(const model::CausalLm& model,
                                                        const model::Tokenizer& tokenizer,
                                                        const model::LinearAdapter* adapter,
                                                        const std::vector<std::string>& prompts,
                                                        const GenerateOptions& options,
                                                        int64_t samples, uint64_t seed);

// Scores of responses to prompts by one judge.
struct Judge {
  std::string name;                            // "oracle:tldr", "rm:<dir>"
  const tasks::Task* task = nullptr;           // the oracle, or
  const model::RewardModel* reward = nullptr;  // the reward model
  int64_t rm_max_length = 640;
};
absl::StatusOr<std::vector<double>> Score(const Judge& judge,
                                          const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses);

struct JudgeResult {
  std::string judge;
  double win_rate = 0;          // P(score(output) > score(other))
  double mean_reward_diff = 0;  // mean of score(output) - score(other)
  std::vector<double> output_scores, other_scores;
};

// Compares `outputs` with `others` (references, or another policy's outputs)
// on every judge. INVALID_ARGUMENT when a prompt has no reference (empty).
absl::StatusOr<std::vector<JudgeResult>> Compare(const std::vector<Judge>& judges,
                                                 const std::vector<std::string>& prompts,
                                                 const std::vector<std::string>& outputs,
                                                 const std::vector<std::string>& others);

}  // namespace bpo::eval

#endif  // BPO_EVAL_EVALUATE_H_
