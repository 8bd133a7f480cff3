#include "model/causal_lm.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/checkpoint.h"
#include "model/torch_errors.h"

namespace bpo::model {
namespace {

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// LibTorch 1.13's CPU bf16 kernels for batched matmul and the activations
// round more than once (several ulps off torch 2.x, which accumulates in
// float32 and rounds once); on that path they run in float32 and round to
// bf16 at the end, as HF's reference does. linear() is exact already.
bool NeedsUpcast(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 && t.device().is_cpu();
}

at::Tensor MatMul(const at::Tensor& a, const at::Tensor& b) {
  if (!NeedsUpcast(a)) return at::matmul(a, b);
  return at::matmul(a.to(at::kFloat), b.to(at::kFloat)).to(a.scalar_type());
}

at::Tensor Act(const at::Tensor& x, Activation act) {
  if (!NeedsUpcast(x)) return ApplyActivation(x, act);
  return ApplyActivation(x.to(at::kFloat), act).to(x.scalar_type());
}

at::Tensor SoftCap(const at::Tensor& x, double cap) { return at::tanh(x / cap) * cap; }

}  // namespace

const char* LinearName(LinearKind kind) {
  static const char* kNames[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                 "gate_proj", "up_proj", "down_proj"};
  return kNames[static_cast<int>(kind)];
}

const char* LinearParent(LinearKind kind) {
  return static_cast<int>(kind) <= static_cast<int>(LinearKind::kO) ? "self_attn" : "mlp";
}

at::Tensor ApplyActivation(const at::Tensor& x, Activation act) {
  switch (act) {
    case Activation::kSilu:
      return at::silu(x);
    case Activation::kGeluTanh:
      return at::gelu(x, "tanh");
    case Activation::kGelu:
      return at::gelu(x);
  }
  return x;
}

void KvCache::SelectRows(const at::Tensor& index) {
  for (auto& t : k) t = t.index_select(0, index);
  for (auto& t : v) t = t.index_select(0, index);
  key_mask = key_mask.index_select(0, index);
}

at::Tensor PositionsFromMask(const at::Tensor& attention_mask) {
  return (attention_mask.to(at::kLong).cumsum(-1) - 1).clamp_min(0);
}

absl::StatusOr<std::unique_ptr<CausalLm>> CausalLm::LoadUnguarded(const std::string& dir,
                                                                  const LoadOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": unsupported dtype ", at::toString(options.dtype), " (float32 or bfloat16)"));
  }
  auto config = LoadCausalLmConfig(dir);
  if (!config.ok()) return config.status();
  auto ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) return ckpt.status();
  std::unique_ptr<CausalLm> m(new CausalLm());
  m->config_ = *config;
  const CausalLmConfig& c = m->config_;
  const auto opts = at::TensorOptions().dtype(options.dtype).device(options.device);
  auto take = [&](const std::string& name, std::vector<int64_t> shape,
                  at::Tensor* out) -> absl::Status {
    auto t = (*ckpt)->Take(name, shape, opts);
    if (!t.ok()) return t.status();
    *out = std::move(*t);
    return absl::OkStatus();
  };
  const int64_t E = c.hidden_size, D = c.head_dim;
  if (auto s = take("model.embed_tokens.weight", {c.vocab_size, E}, &m->embed_); !s.ok()) return s;
  if (auto s = take("model.norm.weight", {E}, &m->final_norm_); !s.ok()) return s;
  if (c.tie_word_embeddings) {
    m->lm_head_ = m->embed_;
  } else if (auto s = take("lm_head.weight", {c.vocab_size, E}, &m->lm_head_); !s.ok()) {
    return s;
  }
  const int64_t out_dims[kNumLinearKinds] = {c.num_heads * D,
                                             c.num_kv_heads * D,
                                             c.num_kv_heads * D,
                                             E,
                                             c.intermediate_size,
                                             c.intermediate_size,
                                             E};
  const int64_t in_dims[kNumLinearKinds] = {E, E, E, c.num_heads * D, E, E, c.intermediate_size};
  m->layers_.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    DecoderLayer& l = m->layers_[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    if (auto s = take(p + "input_layernorm.weight", {E}, &l.input_norm); !s.ok()) return s;
    if (auto s = take(p + "post_attention_layernorm.weight", {E}, &l.post_attn_norm); !s.ok()) {
      return s;
    }
    if (c.sandwich_norms) {
      if (auto s = take(p + "pre_feedforward_layernorm.weight", {E}, &l.pre_ffn_norm); !s.ok()) {
        return s;
      }
      if (auto s = take(p + "post_feedforward_layernorm.weight", {E}, &l.post_ffn_norm); !s.ok()) {
        return s;
      }
    }
    for (int k = 0; k < kNumLinearKinds; ++k) {
      const auto kind = static_cast<LinearKind>(k);
      const std::string name = absl::StrCat(p, LinearParent(kind), ".", LinearName(kind));
      if (auto s = take(name + ".weight", {out_dims[k], in_dims[k]}, &l.linear[k].weight);
          !s.ok()) {
        return s;
      }
      const bool has_bias = k <= static_cast<int>(LinearKind::kO) ? c.attention_bias : c.mlp_bias;
      if (has_bias) {
        if (auto s = take(name + ".bias", {out_dims[k]}, &l.linear[k].bias); !s.ok()) return s;
      }
    }
  }
  // A tied checkpoint may still carry lm_head.weight (a copy); nothing else may remain.
  std::vector<std::string> ignored = {"rotary_emb.inv_freq"};
  if (c.tie_word_embeddings) ignored.push_back("lm_head.weight");
  const auto extra = (*ckpt)->Untaken(ignored);
  if (!extra.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat((*ckpt)->FileOf(extra.front()), ": unexpected tensor '", extra.front(), "'",
                     extra.size() > 1 ? absl::StrCat(" and ", extra.size() - 1, " more") : "",
                     " for ", ArchitectureName(c.arch), " as config.json describes it"));
  }
  m->inv_freq_ =
      1.0 / at::pow(c.rope_theta,
                    at::arange(0, D, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
                        static_cast<double>(D));
  m->inv_freq_ = m->inv_freq_.to(options.device);
  return m;
}

absl::StatusOr<std::unique_ptr<CausalLm>> CausalLm::Load(const std::string& dir,
                                                         const LoadOptions& options) {
  return CatchTorchErrors(absl::StrCat("loading ", dir),
                          [&] { return LoadUnguarded(dir, options); });
}

std::vector<std::pair<std::string, at::Tensor>> CausalLm::NamedParameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back("model.embed_tokens.weight", embed_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const DecoderLayer& l = layers_[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    out.emplace_back(p + "input_layernorm.weight", l.input_norm);
    out.emplace_back(p + "post_attention_layernorm.weight", l.post_attn_norm);
    if (l.pre_ffn_norm.defined())
      out.emplace_back(p + "pre_feedforward_layernorm.weight", l.pre_ffn_norm);
    if (l.post_ffn_norm.defined())
      out.emplace_back(p + "post_feedforward_layernorm.weight", l.post_ffn_norm);
    for (int k = 0; k < kNumLinearKinds; ++k) {
      const auto kind = static_cast<LinearKind>(k);
      const std::string name = absl::StrCat(p, LinearParent(kind), ".", LinearName(kind));
      out.emplace_back(name + ".weight", l.linear[k].weight);
      if (l.linear[k].bias.defined()) out.emplace_back(name + ".bias", l.linear[k].bias);
    }
  }
  out.emplace_back("model.norm.weight", final_norm_);
  if (!config_.tie_word_embeddings) out.emplace_back("lm_head.weight", lm_head_);
  return out;
}

int64_t CausalLm::NumParameters() const {
  int64_t n = embed_.numel() + final_norm_.numel();
  if (!config_.tie_word_embeddings) n += lm_head_.numel();
  for (const DecoderLayer& l : layers_) {
    for (const at::Tensor* t :
         {&l.input_norm, &l.post_attn_norm, &l.pre_ffn_norm, &l.post_ffn_norm}) {
      if (t->defined()) n += t->numel();
    }
    for (const Linear& lin : l.linear) {
      n += lin.weight.numel() + (lin.bias.defined() ? lin.bias.numel() : 0);
    }
  }
  return n;
}

KvCache CausalLm::NewCache(int64_t batch, int64_t capacity) const {
  KvCache cache;
  const auto opts = options();
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    cache.k.push_back(at::zeros({batch, config_.num_kv_heads, capacity, config_.head_dim}, opts));
    cache.v.push_back(at::zeros({batch, config_.num_kv_heads, capacity, config_.head_dim}, opts));
  }
  cache.key_mask = at::zeros({batch, capacity}, opts.dtype(at::kBool));
  return cache;
}

at::Tensor CausalLm::Norm(const at::Tensor& x, const at::Tensor& w) const {
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor normed =
      xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + config_.rms_norm_eps);
  if (config_.norm_adds_one) return (normed * (1.0 + w.to(at::kFloat))).to(x.scalar_type());
  return w * normed.to(x.scalar_type());
}

at::Tensor CausalLm::Project(const at::Tensor& x, int64_t layer, LinearKind kind,
                             const LinearAdapter* adapter) const {
  const Linear& lin = layers_[layer].linear[static_cast<int>(kind)];
  at::Tensor y = at::linear(x, lin.weight, lin.bias);
  if (adapter != nullptr) {
    at::Tensor delta = adapter->Delta(layer, kind, x);
    // An fp32 delta on a bf16 model: the sum in fp32, rounded once (PEFT).
    if (delta.defined())
      y = delta.scalar_type() == y.scalar_type() ? y + delta : (y + delta).to(y.scalar_type());
  }
  return y;
}

at::Tensor CausalLm::Attention(const at::Tensor& x, int64_t layer, const at::Tensor& cos,
                               const at::Tensor& sin, const at::Tensor& mask, KvCache* cache,
                               const LinearAdapter* adapter) const {
  const int64_t B = x.size(0), S = x.size(1), H = config_.num_heads, KV = config_.num_kv_heads,
                D = config_.head_dim, G = H / KV;
  at::Tensor q = Project(x, layer, LinearKind::kQ, adapter).view({B, S, H, D}).transpose(1, 2);
  at::Tensor k = Project(x, layer, LinearKind::kK, adapter).view({B, S, KV, D}).transpose(1, 2);
  at::Tensor v = Project(x, layer, LinearKind::kV, adapter).view({B, S, KV, D}).transpose(1, 2);
  // cos, sin: [B, 1, S, D]
  q = q * cos + RotateHalf(q) * sin;
  k = k * cos + RotateHalf(k) * sin;
  if (cache != nullptr) {
    const int64_t start = cache->length;
    cache->k[layer].narrow(2, start, S).copy_(k);
    cache->v[layer].narrow(2, start, S).copy_(v);
    k = cache->k[layer].narrow(2, 0, start + S);
    v = cache->v[layer].narrow(2, 0, start + S);
  }
  const int64_t T = k.size(2);
  const double scaling = config_.query_pre_attn_scalar > 0
                             ? 1.0 / std::sqrt(config_.query_pre_attn_scalar)
                             : 1.0 / std::sqrt(static_cast<double>(D));
  // Grouped-query attention without repeating K and V: the G query heads of
  // one kv-head are stacked along the sequence axis.
  at::Tensor qg = q.reshape({B, KV, G * S, D});
  at::Tensor scores = MatMul(qg, k.transpose(2, 3)) * scaling;  // [B, KV, G*S, T]
  if (config_.attn_logit_softcap > 0) scores = SoftCap(scores, config_.attn_logit_softcap);
  scores = scores.view({B, KV, G, S, T}) + mask.unsqueeze(1).unsqueeze(1);  // mask [B, S, T]
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  at::Tensor out = MatMul(probs.view({B, KV, G * S, T}), v);  // [B, KV, G*S, D]
  out = out.view({B, H, S, D}).transpose(1, 2).reshape({B, S, H * D});
  return Project(out, layer, LinearKind::kO, adapter);
}

at::Tensor CausalLm::Forward(const at::Tensor& input_ids, const at::Tensor& position_ids,
                             const at::Tensor& key_mask, KvCache* cache,
                             const LinearAdapter* adapter) const {
  const int64_t S = input_ids.size(1);
  const int64_t past = cache != nullptr ? cache->length : 0;
  const int64_t T = past + S;
  const at::ScalarType dtype = embed_.scalar_type();
  at::Tensor h = at::embedding(embed_, input_ids);
  if (config_.scale_embeddings) {
    // HF rounds the normalizer to the model's dtype before multiplying.
    const at::Tensor normalizer =
        at::scalar_tensor(std::sqrt(static_cast<double>(config_.hidden_size)), h.options())
            .to(dtype);
    h = h * normalizer;
  }

  // RoPE tables in float32, then the model's dtype: [B, 1, S, D].
  at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [B, S, D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  const at::Tensor cos = emb.cos().to(dtype).unsqueeze(1);
  const at::Tensor sin = emb.sin().to(dtype).unsqueeze(1);

  // Additive masks [B, S, T]: causal over absolute positions, padding keys
  // removed, and for sliding layers keys older than the window removed.
  at::Tensor keys_valid;
  if (cache != nullptr) {
    cache->key_mask.narrow(1, past, S).copy_(key_mask.narrow(1, key_mask.size(1) - S, S));
    keys_valid = cache->key_mask.narrow(1, 0, T);
  } else {
    keys_valid = key_mask.to(at::kBool);
  }
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(input_ids.device());
  const at::Tensor q_idx = at::arange(past, T, long_opts).view({S, 1});
  const at::Tensor k_idx = at::arange(0, T, long_opts).view({1, T});
  const at::Tensor causal = (k_idx <= q_idx).unsqueeze(0) & keys_valid.unsqueeze(1);  // [B,S,T]
  const double neg = -std::numeric_limits<float>::max();
  // A row with no visible key (a padding query) attends to nothing real; give
  // it a finite mask so softmax stays finite, as HF does.
  // Masks stay float32: added to bf16 scores they promote them exactly, and
  // softmax runs in float32 anyway.
  const auto to_additive = [&](const at::Tensor& allowed) {
    return at::zeros(allowed.sizes(), h.options().dtype(at::kFloat))
        .masked_fill(allowed.logical_not(), neg);
  };
  const at::Tensor full_mask = to_additive(causal);
  at::Tensor sliding_mask;
  if (config_.sliding_window > 0) {
    sliding_mask = to_additive(causal & (k_idx > q_idx - config_.sliding_window).unsqueeze(0));
  }

  for (int64_t i = 0; i < config_.num_layers; ++i) {
    const DecoderLayer& l = layers_[i];
    const at::Tensor& mask = config_.layer_is_sliding[i] ? sliding_mask : full_mask;
    at::Tensor a = Attention(Norm(h, l.input_norm), i, cos, sin, mask, cache, adapter);
    if (config_.sandwich_norms) {
      h = h + Norm(a, l.post_attn_norm);
      at::Tensor x = Norm(h, l.pre_ffn_norm);
      at::Tensor f = Project(Act(Project(x, i, LinearKind::kGate, adapter), config_.activation) *
                                 Project(x, i, LinearKind::kUp, adapter),
                             i, LinearKind::kDown, adapter);
      h = h + Norm(f, l.post_ffn_norm);
    } else {
      h = h + a;
      at::Tensor x = Norm(h, l.post_attn_norm);
      h = h + Project(Act(Project(x, i, LinearKind::kGate, adapter), config_.activation) *
                          Project(x, i, LinearKind::kUp, adapter),
                      i, LinearKind::kDown, adapter);
    }
  }
  if (cache != nullptr) cache->length = T;
  return Norm(h, final_norm_);
}

at::Tensor CausalLm::Logits(const at::Tensor& hidden) const {
  at::Tensor logits = at::linear(hidden, lm_head_);
  if (config_.final_logit_softcap > 0) logits = SoftCap(logits, config_.final_logit_softcap);
  return logits.to(at::kFloat);
}

at::Tensor CausalLm::ForwardLogits(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const LinearAdapter* adapter) const {
  return Logits(
      Forward(input_ids, PositionsFromMask(attention_mask), attention_mask, nullptr, adapter));
}

}  // namespace bpo::model
