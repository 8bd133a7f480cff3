// A policy applied to text, as the checkpoint commands use it (bpo generate,
// bpo logprobs, bpo model info): prompts in, decoded continuations out; a
// response's log-probs; what a model directory holds. LibTorch errors come
// back as a Status (torch_errors.h).
#ifndef BPO_MODEL_POLICY_TEXT_H_
#define BPO_MODEL_POLICY_TEXT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/generate.h"
#include "model/policy.h"
#include "nlohmann/json.hpp"

namespace bpo::model {

// "peft_linear" or "mean_delta".
absl::StatusOr<MergeMode> ParseMergeMode(const std::string& name);

struct GeneratedText {
  size_t prompt_index = 0;
  int64_t sample = 0;  // 0 .. samples_per_prompt - 1
  std::string text;
  std::vector<int64_t> token_ids;     // EOS included when it stopped there
  std::vector<float> token_logprobs;  // [token_ids.size()]
  double logprob = 0;                 // their sum
  bool finished = false;              // stopped at EOS
};

// Generates `options.samples_per_prompt` continuations of each prompt
// ([BOS] + its tokens), `batch_size` prompts at a time, and calls `each` for
// every one in prompt order. pad and EOS come from the policy's tokenizer.
absl::Status GenerateTexts(const Policy& policy, const std::vector<std::string>& prompts,
                           GenerateOptions options, int64_t batch_size,
                           const std::function<void(const GeneratedText&)>& each);

struct ResponseLogprobs {
  double sum = 0;
  double mean = 0;
  int64_t tokens = 0;                 // response tokens, EOS included
  std::vector<int64_t> token_ids;     // the response's, then EOS
  std::vector<float> token_logprobs;  // [token_ids.size()]
};

// log p(response + EOS | [BOS] + prompt) under the policy.
absl::StatusOr<ResponseLogprobs> ScoreResponse(const Policy& policy, const std::string& prompt,
                                               const std::string& response);

// What an HF model directory holds, after loading it (which validates every
// tensor's name and shape against config.json): path, architecture, kind
// ("policy" or "reward model"), stored parameters per dtype, sizes, tokenizer.
absl::StatusOr<nlohmann::json> DescribeModelDirectory(const std::string& dir);

}  // namespace bpo::model

#endif  // BPO_MODEL_POLICY_TEXT_H_
