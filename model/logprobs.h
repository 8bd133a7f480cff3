// Sequence log-probabilities of responses for the DAP losses: the sum and
// the length-mean over response tokens (prompt masked, EOS included), batched
// with padding, differentiable (call under NoGradGuard for references).
#ifndef BPO_MODEL_LOGPROBS_H_
#define BPO_MODEL_LOGPROBS_H_

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "model/causal_lm.h"

namespace bpo::model {

struct SequenceLogprobs {
  at::Tensor sum;     // [B] float32
  at::Tensor mean;    // [B] float32: sum / count
  at::Tensor count;   // [B] int64: response tokens
  at::Tensor tokens;  // [B, L] float32: log p(ids[t] | ids[<t]) on response positions, else 0
};

// input_ids [B, L] right-padded prompt+response, attention_mask [B, L],
// response_mask [B, L]: 1 on the response tokens (the labels), 0 on the prompt
// and padding; position 0 is never a label. Logits are computed only at the
// positions that predict a label, `chunk` rows at a time, to bound memory for
// large vocabularies.
SequenceLogprobs ComputeSequenceLogprobs(const CausalLm& model, const at::Tensor& input_ids,
                                         const at::Tensor& attention_mask,
                                         const at::Tensor& response_mask,
                                         const LinearAdapter* adapter = nullptr,
                                         int64_t chunk = 1024);

}  // namespace bpo::model

#endif  // BPO_MODEL_LOGPROBS_H_
