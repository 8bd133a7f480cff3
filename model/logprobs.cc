#include "model/logprobs.h"

#include <vector>

namespace bpo::model {

SequenceLogprobs ComputeSequenceLogprobs(const CausalLm& model, const at::Tensor& input_ids,
                                         const at::Tensor& attention_mask,
                                         const at::Tensor& response_mask,
                                         const LinearAdapter* adapter, int64_t chunk) {
  const at::Device device = model.options().device();
  const at::Tensor ids = input_ids.to(device, at::kLong);
  const at::Tensor mask = attention_mask.to(device, at::kLong);
  const int64_t B = ids.size(0), L = ids.size(1);
  const at::Tensor hidden = model.Forward(ids, PositionsFromMask(mask), mask, nullptr, adapter);

  // Label t is predicted by the hidden state at t - 1.
  at::Tensor labels_mask = response_mask.to(device, at::kBool).clone();
  labels_mask.select(1, 0).fill_(false);
  const at::Tensor flat = labels_mask.reshape({-1}).nonzero().squeeze(1);  // label positions
  const at::Tensor labels = ids.reshape({-1}).index_select(0, flat);
  const at::Tensor predictors = hidden.reshape({B * L, hidden.size(2)}).index_select(0, flat - 1);

  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < flat.size(0); start += chunk) {
    const int64_t len = std::min(chunk, flat.size(0) - start);
    const at::Tensor logits = model.Logits(predictors.narrow(0, start, len));  // [len, V] f32
    const at::Tensor lab = labels.narrow(0, start, len).unsqueeze(1);
    parts.push_back(logits.gather(1, lab).squeeze(1) - at::logsumexp(logits, -1));
  }
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const at::Tensor token_lp = parts.empty() ? at::zeros({0}, f32) : at::cat(parts);
  SequenceLogprobs out;
  out.tokens = at::zeros({B * L}, f32).index_put({flat}, token_lp).view({B, L});
  out.sum = out.tokens.sum(1);
  out.count = labels_mask.sum(1);
  out.mean = out.sum / out.count.clamp_min(1).to(at::kFloat);
  return out;
}

}  // namespace bpo::model
