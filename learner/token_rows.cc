#include "learner/token_rows.h"

#include <algorithm>

#include "model/generate.h"

namespace bpo::learner {

TokenRow EncodeRow(const model::Tokenizer& tok, const std::string& prompt,
                   const std::string& response, int64_t max_prompt_tokens,
                   int64_t max_response_tokens) {
  TokenRow row;
  row.ids = model::KeepPromptTail(tok.Encode(prompt, /*add_bos=*/true), max_prompt_tokens);
  row.prompt_tokens = static_cast<int64_t>(row.ids.size());
  std::vector<int64_t> resp = tok.Encode(response, /*add_bos=*/false);
  if (static_cast<int64_t>(resp.size()) > max_response_tokens) resp.resize(max_response_tokens);
  if (tok.eos_id() >= 0) resp.push_back(tok.eos_id());
  row.ids.insert(row.ids.end(), resp.begin(), resp.end());
  return row;
}

PaddedRows RightPad(const std::vector<TokenRow>& rows, int64_t pad_id) {
  const int64_t n = static_cast<int64_t>(rows.size());
  int64_t L = 0;
  for (const TokenRow& r : rows) L = std::max<int64_t>(L, r.ids.size());
  PaddedRows b{at::full({n, L}, std::max<int64_t>(pad_id, 0), at::kLong),
               at::zeros({n, L}, at::kLong), at::zeros({n, L}, at::kLong)};
  for (int64_t r = 0; r < n; ++r) {
    const int64_t len = static_cast<int64_t>(rows[r].ids.size());
    b.input_ids[r].narrow(0, 0, len).copy_(at::tensor(rows[r].ids, at::kLong));
    b.attention_mask[r].narrow(0, 0, len).fill_(1);
    b.response_mask[r].narrow(0, rows[r].prompt_tokens, len - rows[r].prompt_tokens).fill_(1);
  }
  return b;
}

}  // namespace bpo::learner
