// Token rows for training: a prompt followed by a response, right padded
// into one batch. Shared by the pair batches (pairs.h) and SFT (sft.h).
#ifndef BPO_LEARNER_TOKEN_ROWS_H_
#define BPO_LEARNER_TOKEN_ROWS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace bpo::learner {

// One training row: prompt ids then response ids.
struct TokenRow {
  std::vector<int64_t> ids;
  int64_t prompt_tokens = 0;  // ids[0, prompt_tokens) is the prompt
};

// [BOS] + prompt (its last max_prompt_tokens kept, as generation does) ++
// response (its first max_response_tokens) + [EOS] (when the tokenizer has one).
TokenRow EncodeRow(const model::Tokenizer& tok, const std::string& prompt,
                   const std::string& response, int64_t max_prompt_tokens,
                   int64_t max_response_tokens);

// n = rows.size() rows right padded to the longest, L:
struct PaddedRows {
  at::Tensor input_ids;       // [n, L] int64, padding = max(pad_id, 0)
  at::Tensor attention_mask;  // [n, L] int64, 1 on the row's tokens
  at::Tensor response_mask;   // [n, L] int64, 1 on the response tokens
};
PaddedRows RightPad(const std::vector<TokenRow>& rows, int64_t pad_id);

}  // namespace bpo::learner

#endif  // BPO_LEARNER_TOKEN_ROWS_H_
