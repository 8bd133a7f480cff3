#include "model/deberta.h"

#include <ATen/core/grad_mode.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "model/checkpoint.h"
#include "model/json_reader.h"
#include "model/torch_errors.h"

namespace bpo::model {
namespace {

using nlohmann::json;

constexpr char kArchitecture[] = "DebertaV2ForSequenceClassification";

absl::StatusOr<Activation> ParseDebertaActivation(const std::string& name,
                                                  const std::string& where) {
  if (name == "gelu") return Activation::kGelu;  // exact (erf) GELU
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") {
    return Activation::kGeluTanh;
  }
  if (name == "silu" || name == "swish") return Activation::kSilu;
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": unsupported activation '", name,
                   "' (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish)"));
}

// The most negative finite value of a floating dtype (torch.finfo(dtype).min).
double LowestOf(at::ScalarType dtype) {
  if (dtype == at::kBFloat16) {
    return static_cast<double>(static_cast<float>(std::numeric_limits<c10::BFloat16>::lowest()));
  }
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

// "a|b" or ["a", "b"] as lower-case, trimmed parts; false when neither.
bool StringList(const json& v, std::vector<std::string>* out) {
  out->clear();
  if (v.is_string()) {
    for (absl::string_view part : absl::StrSplit(v.get<std::string>(), '|', absl::SkipEmpty())) {
      out->push_back(absl::AsciiStrToLower(absl::StripAsciiWhitespace(part)));
    }
    return true;
  }
  if (!v.is_array()) return false;
  for (const auto& e : v) {
    if (!e.is_string()) return false;
    out->push_back(absl::AsciiStrToLower(absl::StripAsciiWhitespace(e.get<std::string>())));
  }
  return true;
}

absl::Status CheckIds(const at::Tensor& ids, int64_t limit, const char* what) {
  if (ids.numel() == 0) return absl::OkStatus();
  const int64_t lo = ids.min().item<int64_t>();
  const int64_t hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= limit) {
    return absl::InvalidArgumentError(absl::StrCat("DebertaRewardModel::Score: ", what,
                                                   " must lie in [0, ", limit, "), got [", lo, ", ",
                                                   hi, "]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DebertaConfig> ParseDebertaConfig(const std::string& json_text,
                                                 const std::string& source) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  JsonReader r(j, source);
  std::string arch_name;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    arch_name = j["architectures"][0].get<std::string>();
  }
  const std::string model_type = r.String("model_type", "");
  if (arch_name != kArchitecture && !(arch_name.empty() && model_type == "deberta-v2")) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": architectures: unsupported architecture '",
        arch_name.empty() ? model_type : arch_name, "' (supported: ", kArchitecture, ")"));
  }
  const auto invalid = [&](const char* key, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, ": ", why));
  };

  DebertaConfig c;
  c.vocab_size = r.Int("vocab_size");
  c.hidden_size = r.Int("hidden_size");
  c.num_layers = r.Int("num_hidden_layers");
  c.num_heads = r.Int("num_attention_heads");
  c.intermediate_size = r.Int("intermediate_size");
  // Defaults are DebertaV2Config's.
  c.max_position_embeddings = r.Int("max_position_embeddings", 512);
  c.type_vocab_size = r.Int("type_vocab_size", 0);
  c.layer_norm_eps = r.Double("layer_norm_eps", 1e-7);
  c.pad_token_id = r.Int("pad_token_id", 0);
  const bool relative_attention = r.Bool("relative_attention", false);
  c.position_biased_input = r.Bool("position_biased_input", true);
  c.share_att_key = r.Bool("share_att_key", false);
  c.position_buckets = r.Int("position_buckets", -1);
  c.max_relative_positions = r.Int("max_relative_positions", -1);
  c.pooler_hidden_size = r.Int("pooler_hidden_size", c.hidden_size);
  const int64_t embedding_size = r.Int("embedding_size", c.hidden_size);
  const int64_t conv_kernel_size = r.Int("conv_kernel_size", 0);
  const std::string hidden_act = r.String("hidden_act", "gelu");
  const std::string pooler_act = r.String("pooler_hidden_act", "gelu");
  BPO_RETURN_IF_JSON_ERROR(r);

  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                               {"hidden_size", c.hidden_size},
                               {"num_hidden_layers", c.num_layers},
                               {"num_attention_heads", c.num_heads},
                               {"intermediate_size", c.intermediate_size},
                               {"max_position_embeddings", c.max_position_embeddings}}) {
    // Bounded before anything is allocated from them (see hf_config.cc).
    const int64_t most = std::string(key) == "num_hidden_layers" ? 4096 : int64_t{1} << 31;
    if (v <= 0 || v > most) {
      return invalid(key, absl::StrCat("must be in [1, ", most, "], got ", v));
    }
  }
  if (c.hidden_size % c.num_heads != 0) {
    return invalid("num_attention_heads",
                   absl::StrCat(c.num_heads, " does not divide hidden_size ", c.hidden_size));
  }
  c.head_dim = c.hidden_size / c.num_heads;
  if (j.contains("attention_head_size") &&
      !(j["attention_head_size"].is_number_integer() &&
        j["attention_head_size"].get<int64_t>() == c.head_dim)) {
    return invalid("attention_head_size",
                   absl::StrCat(j["attention_head_size"].dump(),
                                " is not supported (only hidden_size / num_attention_heads = ",
                                c.head_dim, ")"));
  }
  if (c.type_vocab_size < 0) {
    return invalid("type_vocab_size", absl::StrCat("must be >= 0, got ", c.type_vocab_size));
  }
  if (!relative_attention) {
    return invalid("relative_attention",
                   "false is not supported (DeBERTa-v2/v3 use relative attention)");
  }
  if (c.position_biased_input) {
    return invalid("position_biased_input",
                   "true is not supported (absolute position embeddings; DeBERTa-v3 uses false)");
  }
  if (!c.share_att_key) {
    return invalid("share_att_key",
                   "false is not supported (separate pos_key_proj/pos_query_proj; DeBERTa-v3 "
                   "shares the attention keys)");
  }
  if (embedding_size != c.hidden_size) {
    return invalid("embedding_size", absl::StrCat(embedding_size, " != hidden_size ", c.hidden_size,
                                                  " is not supported (no embed_proj)"));
  }
  if (conv_kernel_size > 0) {
    return invalid("conv_kernel_size",
                   absl::StrCat(conv_kernel_size, " is not supported (no convolution layer)"));
  }
  if (c.pooler_hidden_size != c.hidden_size) {
    return invalid("pooler_hidden_size",
                   absl::StrCat(c.pooler_hidden_size, " != hidden_size ", c.hidden_size,
                                " is not supported (the classifier reads hidden_size features)"));
  }

  // pos_att_type: a list, or the legacy "p2c|c2p" string; null means none.
  std::vector<std::string> parts;
  if (j.contains("pos_att_type") && !j["pos_att_type"].is_null()) {
    if (!StringList(j["pos_att_type"], &parts)) {
      return invalid("pos_att_type",
                     absl::StrCat("expected a list of strings, got ", j["pos_att_type"].dump()));
    }
  }
  for (const std::string& p : parts) {
    if (p == "c2p") {
      c.c2p = true;
    } else if (p == "p2c") {
      c.p2c = true;
    } else {
      return invalid("pos_att_type", absl::StrCat("'", p, "' is not supported (only c2p and p2c)"));
    }
  }
  // norm_rel_ebd: "|"-separated; "layer_norm" normalises the relative embeddings.
  if (j.contains("norm_rel_ebd") && !j["norm_rel_ebd"].is_null()) {
    if (!j["norm_rel_ebd"].is_string()) {
      return invalid("norm_rel_ebd",
                     absl::StrCat("expected a string, got ", j["norm_rel_ebd"].dump()));
    }
    StringList(j["norm_rel_ebd"], &parts);
    for (const std::string& p : parts) {
      if (p == "layer_norm") {
        c.norm_rel_ebd_layer_norm = true;
      } else if (p != "none") {
        return invalid("norm_rel_ebd",
                       absl::StrCat("'", p, "' is not supported (only layer_norm or none)"));
      }
    }
  }
  if (c.max_relative_positions < 1) c.max_relative_positions = c.max_position_embeddings;
  if (c.position_buckets == 1) {
    return invalid("position_buckets",
                   "1 is not a valid bucket count (use >= 2, or <= 0 for none)");
  }
  c.att_span = c.position_buckets > 0 ? c.position_buckets : c.max_relative_positions;

  // num_labels is not stored by save_pretrained; it is the size of id2label
  // (default 2).
  c.num_labels = 2;
  if (j.contains("num_labels") && j["num_labels"].is_number_integer()) {
    c.num_labels = j["num_labels"].get<int64_t>();
  } else if (j.contains("id2label") && j["id2label"].is_object()) {
    c.num_labels = static_cast<int64_t>(j["id2label"].size());
  }
  if (c.num_labels != 1) {
    return invalid("id2label", absl::StrCat("num_labels is ", c.num_labels,
                                            "; only 1 (a reward model's single logit) is "
                                            "supported"));
  }

  auto act = ParseDebertaActivation(hidden_act, absl::StrCat(source, ": hidden_act"));
  if (!act.ok()) return act.status();
  c.act = *act;
  auto pact = ParseDebertaActivation(pooler_act, absl::StrCat(source, ": pooler_hidden_act"));
  if (!pact.ok()) return pact.status();
  c.pooler_act = *pact;
  return c;
}

absl::StatusOr<DebertaConfig> LoadDebertaConfig(const std::string& path) {
  auto config = ReadModelConfig(path);
  if (!config.ok()) return config.status();
  return ParseDebertaConfig(config->text, config->path);
}

at::Tensor RelativePositionBuckets(int64_t query_len, int64_t key_len, int64_t bucket_size,
                                   int64_t max_position) {
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  const at::Tensor rel =
      at::arange(query_len, long_opts).view({-1, 1}) - at::arange(key_len, long_opts).view({1, -1});
  if (bucket_size <= 0 || max_position <= 0) return rel;
  // The same float32 operations as HF, so that ceil() rounds the same way.
  const int64_t mid = bucket_size / 2;
  const at::Tensor near = (rel < mid) & (rel > -mid);
  const at::Tensor abs_pos = at::where(near, at::full_like(rel, mid - 1), rel.abs());
  const at::Tensor log_base = at::log(at::scalar_tensor(
      static_cast<double>(max_position - 1) / static_cast<double>(mid), at::kFloat));
  const at::Tensor log_pos =
      at::ceil(at::log(abs_pos.to(at::kFloat) / mid) / log_base * (mid - 1)) + mid;
  return at::where(abs_pos <= mid, rel.to(at::kFloat), log_pos * rel.sign()).to(at::kLong);
}

absl::StatusOr<std::unique_ptr<DebertaRewardModel>> DebertaRewardModel::Load(
    const std::string& dir, const LoadOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": unsupported dtype ", at::toString(options.dtype), " (float32 or bfloat16)"));
  }
  auto config = LoadDebertaConfig(dir);
  if (!config.ok()) return config.status();
  auto ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) return ckpt.status();
  std::unique_ptr<DebertaRewardModel> m(new DebertaRewardModel());
  m->config_ = *config;
  m->upcast_ = options.dtype == at::kBFloat16 && options.device.is_cpu();
  const DebertaConfig& c = m->config_;
  const auto opts = at::TensorOptions().dtype(options.dtype).device(options.device);
  try {
    at::NoGradGuard no_grad;
    auto take = [&](const std::string& name, std::vector<int64_t> shape,
                    at::Tensor* out) -> absl::Status {
      auto t = (*ckpt)->Take(name, shape, opts);
      if (!t.ok()) return t.status();
      *out = std::move(*t);
      return absl::OkStatus();
    };
    auto take_linear = [&](const std::string& name, int64_t out, int64_t in,
                           Linear* lin) -> absl::Status {
      if (auto s = take(name + ".weight", {out, in}, &lin->weight); !s.ok()) return s;
      return take(name + ".bias", {out}, &lin->bias);
    };
    auto take_norm = [&](const std::string& name, int64_t n, LayerNormWeights* w) -> absl::Status {
      if (auto s = take(name + ".weight", {n}, &w->weight); !s.ok()) return s;
      return take(name + ".bias", {n}, &w->bias);
    };
    const int64_t E = c.hidden_size, I = c.intermediate_size;
    if (auto s = take("deberta.embeddings.word_embeddings.weight", {c.vocab_size, E},
                      &m->word_embeddings_);
        !s.ok()) {
      return s;
    }
    if (c.type_vocab_size > 0) {
      if (auto s = take("deberta.embeddings.token_type_embeddings.weight", {c.type_vocab_size, E},
                        &m->token_type_embeddings_);
          !s.ok()) {
        return s;
      }
    }
    if (auto s = take_norm("deberta.embeddings.LayerNorm", E, &m->embed_norm_); !s.ok()) return s;
    if (auto s =
            take("deberta.encoder.rel_embeddings.weight", {2 * c.att_span, E}, &m->rel_embeddings_);
        !s.ok()) {
      return s;
    }
    if (c.norm_rel_ebd_layer_norm) {
      if (auto s = take_norm("deberta.encoder.LayerNorm", E, &m->rel_norm_); !s.ok()) return s;
    }
    m->layers_.resize(c.num_layers);
    for (int64_t i = 0; i < c.num_layers; ++i) {
      Layer& l = m->layers_[i];
      const std::string p = absl::StrCat("deberta.encoder.layer.", i, ".");
      for (const auto& [name, lin] : {std::pair<const char*, Linear*>{"query_proj", &l.query},
                                      {"key_proj", &l.key},
                                      {"value_proj", &l.value}}) {
        if (auto s = take_linear(absl::StrCat(p, "attention.self.", name), E, E, lin); !s.ok()) {
          return s;
        }
      }
      if (auto s = take_linear(p + "attention.output.dense", E, E, &l.attn_out); !s.ok()) return s;
      if (auto s = take_norm(p + "attention.output.LayerNorm", E, &l.attn_norm); !s.ok()) return s;
      if (auto s = take_linear(p + "intermediate.dense", I, E, &l.intermediate); !s.ok()) return s;
      if (auto s = take_linear(p + "output.dense", E, I, &l.output); !s.ok()) return s;
      if (auto s = take_norm(p + "output.LayerNorm", E, &l.out_norm); !s.ok()) return s;
    }
    if (auto s = take_linear("pooler.dense", E, E, &m->pooler_); !s.ok()) return s;
    if (auto s = take_linear("classifier", c.num_labels, E, &m->classifier_); !s.ok()) return s;
  } catch (...) {
    return StatusFromCurrentException(
        absl::StrCat(dir, ": loading onto ", options.device.str(), " failed"));
  }
  // HF itself ignores stored absolute position embeddings and position ids.
  const auto extra = (*ckpt)->Untaken({"position_embeddings", "position_ids"});
  if (!extra.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat((*ckpt)->FileOf(extra.front()), ": unexpected tensor '", extra.front(), "'",
                     extra.size() > 1 ? absl::StrCat(" and ", extra.size() - 1, " more") : "",
                     " for ", kArchitecture, " as config.json describes it"));
  }
  return m;
}

at::Tensor DebertaRewardModel::MatMul(const at::Tensor& a, const at::Tensor& b) const {
  if (!upcast_) return at::matmul(a, b);
  return at::matmul(a.to(at::kFloat), b.to(at::kFloat)).to(a.scalar_type());
}

at::Tensor DebertaRewardModel::LayerNorm(const at::Tensor& x, const LayerNormWeights& w) const {
  if (!upcast_) return at::layer_norm(x, {x.size(-1)}, w.weight, w.bias, config_.layer_norm_eps);
  return at::layer_norm(x.to(at::kFloat), {x.size(-1)}, w.weight.to(at::kFloat),
                        w.bias.to(at::kFloat), config_.layer_norm_eps)
      .to(x.scalar_type());
}

at::Tensor DebertaRewardModel::Activate(const at::Tensor& x, Activation act) const {
  if (!upcast_) return ApplyActivation(x, act);
  return ApplyActivation(x.to(at::kFloat), act).to(x.scalar_type());
}

DebertaRewardModel::PositionProjections DebertaRewardModel::ComputePositionProjections() const {
  const int64_t S2 = 2 * config_.att_span, H = config_.num_heads, D = config_.head_dim;
  const at::Tensor rel =
      config_.norm_rel_ebd_layer_norm ? LayerNorm(rel_embeddings_, rel_norm_) : rel_embeddings_;
  // [2S, E] -> [H, 2S, D]
  const auto per_head = [&](const Linear& lin) {
    return at::linear(rel, lin.weight, lin.bias).view({S2, H, D}).permute({1, 0, 2}).contiguous();
  };
  PositionProjections pos;
  for (const Layer& l : layers_) {
    pos.query.push_back(per_head(l.query));
    pos.key.push_back(per_head(l.key));
  }
  return pos;
}

std::shared_ptr<const DebertaRewardModel::PositionProjections>
DebertaRewardModel::CachedPositionProjections() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cached_positions_ == nullptr) {
    at::NoGradGuard no_grad;
    cached_positions_ = std::make_shared<const PositionProjections>(ComputePositionProjections());
  }
  return cached_positions_;
}

void DebertaRewardModel::WeightsChanged() {
  std::lock_guard<std::mutex> lock(cache_mu_);
  cached_positions_.reset();
}

at::Tensor DebertaRewardModel::Attention(const at::Tensor& x, const Layer& l,
                                         const at::Tensor& pos_query, const at::Tensor& pos_key,
                                         const at::Tensor& c2p_index, const at::Tensor& p2c_index,
                                         const at::Tensor& masked) const {
  const int64_t N = x.size(0), L = x.size(1), H = config_.num_heads, D = config_.head_dim;
  const auto heads = [&](const Linear& lin) {
    return at::linear(x, lin.weight, lin.bias).view({N, L, H, D}).transpose(1, 2);  // [N,H,L,D]
  };
  const at::Tensor q = heads(l.query), k = heads(l.key), v = heads(l.value);
  // Every term is divided by sqrt(D * (1 + number of position terms)), the
  // root taken in float32 and rounded to the model's dtype as HF does (in bf16
  // sqrt(48) becomes 6.9375). HF divides the keys before the product.
  const int64_t scale_factor = 1 + (config_.c2p ? 1 : 0) + (config_.p2c ? 1 : 0);
  const at::Tensor scale =
      at::sqrt(at::scalar_tensor(static_cast<double>(D * scale_factor), at::kFloat))
          .to(x.scalar_type());
  at::Tensor scores = MatMul(q, k.transpose(-1, -2) / scale);  // [N, H, L, L]
  const std::vector<int64_t> full = {N, H, L, L};
  at::Tensor rel;
  if (config_.c2p) {
    // content -> position: c2p[i, j] = q_i . pos_key[bucket(i - j) + S]
    // (indices clamped to [0, 2S)).
    const at::Tensor c2p = MatMul(q, pos_key.transpose(-1, -2));  // [N, H, L, 2S]
    rel = at::gather(c2p, -1, c2p_index.expand(full)) / scale;
  }
  if (config_.p2c) {
    // position -> content: p2c[i, j] = k_j . pos_query[S - bucket(j - i)],
    // gathered along the key rows and transposed as HF does (the buckets are
    // odd in i - j, so this is pos_query[bucket(i - j) + S]).
    const at::Tensor p2c = MatMul(k, pos_query.transpose(-1, -2));  // [N, H, L, 2S]
    const at::Tensor term = at::gather(p2c, -1, p2c_index.expand(full)).transpose(-1, -2) / scale;
    rel = rel.defined() ? rel + term : term;
  }
  if (rel.defined()) scores = scores + rel;
  // HF fills masked scores with the dtype's lowest value (not -inf), so a
  // padding query with no valid key gets a finite uniform row.
  scores = scores.masked_fill(masked, LowestOf(scores.scalar_type()));
  const at::Tensor probs = at::softmax(scores, -1);
  const at::Tensor context = MatMul(probs, v).transpose(1, 2).reshape({N, L, H * D});
  return at::linear(context, l.attn_out.weight, l.attn_out.bias);
}

at::Tensor DebertaRewardModel::Forward(const at::Tensor& input_ids,
                                       const at::Tensor& attention_mask,
                                       const at::Tensor& token_type_ids,
                                       const PositionProjections& pos) const {
  const int64_t L = input_ids.size(1), S = config_.att_span;
  const at::ScalarType dtype = word_embeddings_.scalar_type();
  at::Tensor h = at::embedding(word_embeddings_, input_ids);
  if (token_type_embeddings_.defined()) {
    const at::Tensor types = token_type_ids.defined() ? token_type_ids : at::zeros_like(input_ids);
    h = h + at::embedding(token_type_embeddings_, types);
  }
  h = LayerNorm(h, embed_norm_) * attention_mask.to(dtype).unsqueeze(-1);

  // Query i may attend to key j when both are real tokens: [N, 1, L, L].
  const at::Tensor valid = attention_mask != 0;
  const at::Tensor masked =
      (valid.unsqueeze(1).unsqueeze(2) & valid.unsqueeze(1).unsqueeze(3)).logical_not();
  // Relative positions -> rows of the relative embeddings, [L, L] each.
  const at::Tensor rel_pos =
      RelativePositionBuckets(L, L, config_.position_buckets, config_.max_relative_positions)
          .to(input_ids.device());
  const at::Tensor c2p_index = (rel_pos + S).clamp(0, 2 * S - 1);
  const at::Tensor p2c_index = (S - rel_pos).clamp(0, 2 * S - 1);

  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    const at::Tensor a = LayerNorm(
        Attention(h, l, pos.query[i], pos.key[i], c2p_index, p2c_index, masked) + h, l.attn_norm);
    const at::Tensor f =
        at::linear(Activate(at::linear(a, l.intermediate.weight, l.intermediate.bias), config_.act),
                   l.output.weight, l.output.bias);
    h = LayerNorm(f + a, l.out_norm);
  }
  // Context pooler on [CLS], then the classifier: [N, 1].
  const at::Tensor pooled =
      Activate(at::linear(h.select(1, 0), pooler_.weight, pooler_.bias), config_.pooler_act);
  return at::linear(pooled, classifier_.weight, classifier_.bias);
}

absl::StatusOr<at::Tensor> DebertaRewardModel::Score(const at::Tensor& input_ids,
                                                     const at::Tensor& attention_mask,
                                                     const at::Tensor& token_type_ids) const {
  return CheckedForward(input_ids, attention_mask, token_type_ids, /*training=*/false);
}

absl::StatusOr<at::Tensor> DebertaRewardModel::TrainingScores(const at::Tensor& input_ids,
                                                              const at::Tensor& attention_mask,
                                                              const at::Tensor& token_type_ids) {
  return CheckedForward(input_ids, attention_mask, token_type_ids, /*training=*/true);
}

std::vector<std::pair<std::string, at::Tensor>> DebertaRewardModel::NamedParameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  const auto linear = [&](const std::string& name, const Linear& l) {
    out.emplace_back(name + ".weight", l.weight);
    out.emplace_back(name + ".bias", l.bias);
  };
  const auto norm = [&](const std::string& name, const LayerNormWeights& w) {
    out.emplace_back(name + ".weight", w.weight);
    out.emplace_back(name + ".bias", w.bias);
  };
  out.emplace_back("deberta.embeddings.word_embeddings.weight", word_embeddings_);
  if (token_type_embeddings_.defined()) {
    out.emplace_back("deberta.embeddings.token_type_embeddings.weight", token_type_embeddings_);
  }
  norm("deberta.embeddings.LayerNorm", embed_norm_);
  out.emplace_back("deberta.encoder.rel_embeddings.weight", rel_embeddings_);
  if (config_.norm_rel_ebd_layer_norm) norm("deberta.encoder.LayerNorm", rel_norm_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    const std::string p = absl::StrCat("deberta.encoder.layer.", i, ".");
    linear(p + "attention.self.query_proj", l.query);
    linear(p + "attention.self.key_proj", l.key);
    linear(p + "attention.self.value_proj", l.value);
    linear(p + "attention.output.dense", l.attn_out);
    norm(p + "attention.output.LayerNorm", l.attn_norm);
    linear(p + "intermediate.dense", l.intermediate);
    linear(p + "output.dense", l.output);
    norm(p + "output.LayerNorm", l.out_norm);
  }
  linear("pooler.dense", pooler_);
  linear("classifier", classifier_);
  return out;
}

absl::StatusOr<at::Tensor> DebertaRewardModel::CheckedForward(const at::Tensor& input_ids,
                                                              const at::Tensor& attention_mask,
                                                              const at::Tensor& token_type_ids,
                                                              bool training) const {
  std::optional<at::NoGradGuard> no_grad;
  if (!training) no_grad.emplace();
  const auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("DebertaRewardModel::Score: ", why));
  };
  const auto describe = [](const at::Tensor& t) {
    return t.defined() ? absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "] ",
                                      at::toString(t.scalar_type()))
                       : std::string("undefined");
  };
  const auto is_int = [](const at::Tensor& t) {
    return t.defined() && at::isIntegralType(t.scalar_type(), /*includeBool=*/true);
  };
  if (!is_int(input_ids) || input_ids.dim() != 2 || input_ids.size(1) == 0) {
    return bad(
        absl::StrCat("input_ids must be [N, L] integers with L > 0, got ", describe(input_ids)));
  }
  if (!is_int(attention_mask) || attention_mask.sizes() != input_ids.sizes()) {
    return bad(absl::StrCat("attention_mask must be integers shaped like input_ids [",
                            absl::StrJoin(input_ids.sizes(), ", "), "], got ",
                            describe(attention_mask)));
  }
  if (token_type_ids.defined() &&
      (!is_int(token_type_ids) || token_type_ids.sizes() != input_ids.sizes())) {
    return bad(absl::StrCat("token_type_ids must be undefined or integers shaped like input_ids [",
                            absl::StrJoin(input_ids.sizes(), ", "), "], got ",
                            describe(token_type_ids)));
  }
  try {
    const at::Device device = word_embeddings_.device();
    const int64_t N = input_ids.size(0);
    if (N == 0) return at::zeros({0}, at::TensorOptions().dtype(at::kFloat).device(device));
    const at::Tensor ids = input_ids.to(device, at::kLong);
    const at::Tensor mask = attention_mask.to(device, at::kLong);
    at::Tensor types;
    if (auto s = CheckIds(ids, config_.vocab_size, "input_ids"); !s.ok()) return s;
    if (!((mask == 0) | (mask == 1)).all().item<bool>()) {
      return bad("attention_mask must hold only 0 and 1");
    }
    if (!mask.select(1, 0).all().item<bool>()) {
      return bad(
          "every row must start with a real token ([CLS] at column 0 is pooled; pad on "
          "the right)");
    }
    if (token_type_embeddings_.defined() && token_type_ids.defined()) {
      types = token_type_ids.to(device, at::kLong);
      if (auto s = CheckIds(types, config_.type_vocab_size, "token_type_ids"); !s.ok()) return s;
    }
    if (training)
      return Forward(ids, mask, types, ComputePositionProjections()).select(1, 0).to(at::kFloat);
    return Forward(ids, mask, types, *CachedPositionProjections()).select(1, 0).to(at::kFloat);
  } catch (...) {
    return StatusFromCurrentException("DebertaRewardModel::Score");
  }
}

}  // namespace bpo::model
