#include "model/generate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <limits>

#include "absl/strings/str_cat.h"
#include "model/torch_errors.h"

namespace bpo::model {

at::Tensor ApplyTopKTopP(const at::Tensor& logits, int64_t top_k, double top_p) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  at::Tensor out = logits;
  if (top_k > 0 && top_k < logits.size(-1)) {
    // Keep every token whose logit reaches the k-th largest (ties kept).
    const at::Tensor kth = std::get<0>(at::topk(out, top_k, -1)).narrow(-1, top_k - 1, 1);
    out = out.masked_fill(out < kth, neg_inf);
  }
  if (top_p < 1.0) {
    // Drop the lowest-probability tokens whose cumulative mass is <= 1 - p,
    // always keeping the most likely one.
    auto [sorted, order] = at::sort(out, -1, /*descending=*/false);
    at::Tensor cum = at::softmax(sorted, -1).cumsum(-1);
    at::Tensor remove_sorted = cum <= (1.0 - top_p);
    remove_sorted.narrow(-1, remove_sorted.size(-1) - 1, 1).fill_(false);
    at::Tensor remove = at::zeros_like(remove_sorted).scatter(-1, order, remove_sorted);
    out = out.masked_fill(remove, neg_inf);
  }
  return out;
}

static absl::StatusOr<Generation> GenerateUnguarded(const CausalLm& model,
                                                    const at::Tensor& prompt_ids,
                                                    const at::Tensor& prompt_mask,
                                                    const GenerateOptions& o,
                                                    const LinearAdapter* adapter) {
  if (prompt_ids.dim() != 2 || prompt_mask.sizes() != prompt_ids.sizes()) {
    return absl::InvalidArgumentError("generate: prompt_ids and prompt_mask must be [B, P]");
  }
  if (o.max_new_tokens < 1 || o.samples_per_prompt < 1 || (!o.greedy && !(o.temperature > 0)) ||
      o.top_k < 0 || !(o.top_p > 0 && o.top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "generate: need max_new_tokens >= 1, samples_per_prompt >= 1, temperature > 0, "
        "top_k >= 0, 0 < top_p <= 1; got ",
        o.max_new_tokens, ", ", o.samples_per_prompt, ", ", o.temperature, ", ", o.top_k, ", ",
        o.top_p));
  }
  const auto& cfg = model.config();
  const std::vector<int64_t> eos = o.eos_token_ids.empty() ? cfg.eos_token_ids : o.eos_token_ids;
  const int64_t pad = o.pad_token_id >= 0 ? o.pad_token_id : std::max<int64_t>(cfg.pad_token_id, 0);
  const at::Device device = model.options().device();
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(device);

  at::NoGradGuard no_grad;
  const at::Tensor ids = prompt_ids.to(long_opts);
  const at::Tensor mask = prompt_mask.to(long_opts);
  const int64_t B = ids.size(0), P = ids.size(1), n = o.samples_per_prompt, N = B * n;
  const int64_t capacity = P + o.max_new_tokens;

  // One prefill per prompt, then the cache is copied to each sample's row.
  KvCache cache = model.NewCache(B, capacity);
  const at::Tensor positions = PositionsFromMask(mask);
  at::Tensor hidden = model.Forward(ids, positions, mask, &cache, adapter);
  at::Tensor logits = model.Logits(hidden.narrow(1, P - 1, 1).squeeze(1));  // [B, V]
  at::Tensor next_pos = positions.narrow(1, P - 1, 1).squeeze(1) + 1;       // [B]
  if (n > 1) {
    const at::Tensor rows = at::arange(B, long_opts).repeat_interleave(n);
    cache.SelectRows(rows);
    logits = logits.index_select(0, rows);
    next_pos = next_pos.index_select(0, rows);
  }

  // Sampling draws on the model's device: on a GPU a CPU draw would copy the
  // [N, vocab] probabilities to the host at every step. The CUDA generator is
  // a fresh one seeded like the CPU one (other numbers than the CPU's for the
  // same seed; greedy decoding is the same on both).
  at::Generator gen = device.is_cuda() ? at::globalContext().defaultGenerator(device).clone()
                                       : at::detail::createCPUGenerator(o.seed);
  if (device.is_cuda()) gen.set_current_seed(o.seed);
  Generation out;
  out.tokens = at::full({N, o.max_new_tokens}, pad, long_opts);
  out.logprobs = at::zeros({N, o.max_new_tokens}, long_opts.dtype(at::kFloat));
  out.lengths = at::zeros({N}, long_opts);
  at::Tensor finished = at::zeros({N}, long_opts.dtype(at::kBool));
  at::Tensor eos_ids =
      at::tensor(eos.empty() ? std::vector<int64_t>{-1} : eos, at::kLong).to(device);
  const at::Tensor one_mask = at::ones({N, 1}, long_opts);

  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    const at::Tensor logp = at::log_softmax(logits, -1);
    at::Tensor token;
    if (o.greedy) {
      token = logits.argmax(-1);
    } else {
      at::Tensor warped = ApplyTopKTopP(logits / o.temperature, o.top_k, o.top_p);
      const at::Tensor probs = at::softmax(warped, -1);
      token = at::multinomial(probs, 1, /*replacement=*/false, gen).squeeze(1);
    }
    const at::Tensor alive = finished.logical_not();
    token = at::where(alive, token, at::full_like(token, pad));
    out.tokens.select(1, step).copy_(token);
    out.logprobs.select(1, step).copy_(at::where(alive,
                                                 logp.gather(1, token.unsqueeze(1)).squeeze(1),
                                                 at::zeros_like(next_pos, at::kFloat)));
    out.lengths += alive.to(at::kLong);
    finished = finished | (alive & at::isin(token, eos_ids));
    if (finished.all().item<bool>() || step + 1 == o.max_new_tokens) break;
    hidden = model.Forward(token.unsqueeze(1), next_pos.unsqueeze(1), one_mask, &cache, adapter);
    logits = model.Logits(hidden.squeeze(1));
    next_pos = next_pos + 1;
  }
  out.finished = finished;
  return out;
}

absl::StatusOr<Generation> Generate(const CausalLm& model, const at::Tensor& prompt_ids,
                                    const at::Tensor& prompt_mask, const GenerateOptions& o,
                                    const LinearAdapter* adapter) {
  return CatchTorchErrors(
      "generate", [&] { return GenerateUnguarded(model, prompt_ids, prompt_mask, o, adapter); });
}

std::vector<int64_t> KeepPromptTail(std::vector<int64_t> ids, int64_t max_tokens) {
  if (static_cast<int64_t>(ids.size()) <= max_tokens || max_tokens < 1) return ids;
  std::vector<int64_t> cut = {ids.front()};
  cut.insert(cut.end(), ids.end() - (max_tokens - 1), ids.end());
  return cut;
}

absl::StatusOr<int64_t> PromptBudget(const CausalLmConfig& config, int64_t max_prompt_tokens,
                                     int64_t max_new_tokens) {
  int64_t budget = max_prompt_tokens;
  if (config.max_position_embeddings > 0) {
    budget = std::min(budget, config.max_position_embeddings - max_new_tokens);
  }
  if (budget < 2) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens = ", max_new_tokens,
                                                   " leaves no room for a prompt in the model's ",
                                                   config.max_position_embeddings, " positions"));
  }
  return budget;
}

LeftPadded LeftPad(const std::vector<std::vector<int64_t>>& rows, int64_t pad_id) {
  int64_t longest = 0;
  for (const auto& r : rows) longest = std::max<int64_t>(longest, r.size());
  const int64_t n = static_cast<int64_t>(rows.size());
  LeftPadded out{at::full({n, longest}, pad_id, at::kLong), at::zeros({n, longest}, at::kLong)};
  for (int64_t r = 0; r < n; ++r) {
    const int64_t len = static_cast<int64_t>(rows[r].size());
    out.ids[r].narrow(0, longest - len, len).copy_(at::tensor(rows[r], at::kLong));
    out.mask[r].narrow(0, longest - len, len).fill_(1);
  }
  return out;
}

}  // namespace bpo::model
