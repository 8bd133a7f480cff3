// DeBERTa-v2/v3 reward model in Hugging Face format:
// DebertaV2ForSequenceClassification with a single logit (num_labels 1), the
// usual shape of a preference reward model. Disentangled attention with
// log-bucketed relative positions (content->position and position->content
// terms), context pooler on [CLS], linear classifier. fp32 or bf16, CPU or
// CUDA. Inference (Score) or training (TrainingScores: the same forward with
// autograd; dropout is off, as in HF's eval mode).
//
// Shapes: N batch, L tokens, E hidden_size, H heads, D head_dim = E / H,
// S attention span (position_buckets, or max_relative_positions without
// buckets); the relative embeddings have 2S rows.
#ifndef BPO_MODEL_DEBERTA_H_
#define BPO_MODEL_DEBERTA_H_

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "model/causal_lm.h"
#include "model/hf_config.h"

namespace bpo::model {

struct DebertaConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 0;  // 0: token_type_ids are ignored
  double layer_norm_eps = 1e-7;
  // Relative positions: log buckets when position_buckets > 0, else plain
  // clamped distances. max_relative_positions is resolved (a value < 1 in
  // config.json means max_position_embeddings).
  int64_t position_buckets = -1;
  int64_t max_relative_positions = 0;
  int64_t att_span = 0;  // S: position_buckets if > 0, else max_relative_positions
  bool share_att_key = true;
  bool norm_rel_ebd_layer_norm = false;  // norm_rel_ebd "layer_norm" (else "none")
  bool position_biased_input = false;    // only false is supported
  bool c2p = false;                      // "c2p" in pos_att_type
  bool p2c = false;                      // "p2c" in pos_att_type
  int64_t pooler_hidden_size = 0;        // == hidden_size
  int64_t num_labels = 1;                // only 1 is supported
  int64_t pad_token_id = 0;
  Activation act = Activation::kGelu;         // hidden_act
  Activation pooler_act = Activation::kGelu;  // pooler_hidden_act
};

// Reads and checks `<dir>/config.json` (or the file itself when `path` is a
// file); the architecture must be DebertaV2ForSequenceClassification (or
// model_type deberta-v2 without `architectures`). Options bpo does not
// implement (share_att_key false, relative_attention false,
// position_biased_input true, pos_att_type other than c2p/p2c, norm_rel_ebd
// other than layer_norm/none, num_labels != 1, conv layers, a factorised
// embedding, ...) are INVALID_ARGUMENT naming the file and key; NOT_FOUND when
// the path does not exist.
absl::StatusOr<DebertaConfig> LoadDebertaConfig(const std::string& path);
absl::StatusOr<DebertaConfig> ParseDebertaConfig(const std::string& json_text,
                                                 const std::string& source);

// DeBERTa's relative position of query i and key j, (i - j), log-bucketed as
// Hugging Face's make_log_bucket_position does: distances with |i - j| <=
// bucket_size / 2 are kept, larger ones map to
//   sign * (ceil(log(|i - j| / mid) / log((max_position - 1) / mid) * (mid - 1)) + mid),
// mid = bucket_size / 2, evaluated in float32 like HF. bucket_size <= 0 or
// max_position <= 0: plain (i - j). Returns [query_len, key_len] int64 (CPU).
at::Tensor RelativePositionBuckets(int64_t query_len, int64_t key_len, int64_t bucket_size,
                                   int64_t max_position);

class DebertaRewardModel {
 public:
  // Loads config.json and the safetensors weights of an HF directory
  // (LoadOptions: float32 or bfloat16, any device). Errors name the file and
  // the tensor or key: missing, unexpected or misshapen tensors, unsupported
  // options, another architecture.
  static absl::StatusOr<std::unique_ptr<DebertaRewardModel>> Load(const std::string& dir,
                                                                  const LoadOptions& options = {});

  const DebertaConfig& config() const { return config_; }
  at::TensorOptions options() const { return word_embeddings_.options(); }

  // input_ids, attention_mask: [N, L] integers (int64 as HF tokenizers give
  // them), right-padded: [CLS] at column 0 is pooled and relative positions
  // are column distances, so every row must start with a real token.
  // attention_mask holds 0/1. token_type_ids: [N, L] or undefined (zeros);
  // ignored when type_vocab_size is 0. Returns the single logit per row,
  // scores [N] float32 on the model's device. Inputs on another device are
  // copied over. INVALID_ARGUMENT for bad shapes, dtypes, mask values or ids
  // out of range; INTERNAL when LibTorch fails (e.g. out of memory).
  // Thread-safe. The relative embeddings' per-layer query/key projections
  // are computed on first use and cached until WeightsChanged().
  absl::StatusOr<at::Tensor> Score(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const at::Tensor& token_type_ids = {}) const;

  // Score's forward with autograd recording (for training): the same checks,
  // scores [N] float32 with a graph back to the parameters that require grad
  // (the position projections are taken from the current weights, uncached).
  absl::StatusOr<at::Tensor> TrainingScores(const at::Tensor& input_ids,
                                            const at::Tensor& attention_mask,
                                            const at::Tensor& token_type_ids = {});

  // Every weight under its Hugging Face name (the tensors themselves, not
  // copies: setting requires_grad or updating them in place changes the
  // model). Saving them as model.safetensors gives an HF checkpoint.
  std::vector<std::pair<std::string, at::Tensor>> NamedParameters() const;

  // Call after updating weights in place (an optimizer step): drops Score's
  // cached position projections.
  void WeightsChanged();

 private:
  struct LayerNormWeights {
    at::Tensor weight;  // [E]
    at::Tensor bias;    // [E]
  };
  struct Layer {
    Linear query, key, value;  // [E, E] (+ bias [E])
    Linear attn_out;           // [E, E]
    LayerNormWeights attn_norm;
    Linear intermediate;  // [I, E]
    Linear output;        // [E, I]
    LayerNormWeights out_norm;
  };
  // share_att_key: the (normed) relative embeddings through each layer's own
  // query and key projections (bias included), [H, 2S, D] per layer.
  struct PositionProjections {
    std::vector<at::Tensor> query, key;
  };

  DebertaRewardModel() = default;
  // training: autograd on and the position projections recomputed; else the
  // cached ones under NoGradGuard.
  absl::StatusOr<at::Tensor> CheckedForward(const at::Tensor& input_ids,
                                            const at::Tensor& attention_mask,
                                            const at::Tensor& token_type_ids, bool training) const;
  at::Tensor Forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& token_type_ids, const PositionProjections& pos) const;
  PositionProjections ComputePositionProjections() const;
  std::shared_ptr<const PositionProjections> CachedPositionProjections() const;
  // pos_query, pos_key: this layer's [H, 2S, D] position projections.
  at::Tensor Attention(const at::Tensor& x, const Layer& l, const at::Tensor& pos_query,
                       const at::Tensor& pos_key, const at::Tensor& c2p_index,
                       const at::Tensor& p2c_index, const at::Tensor& masked) const;
  // Batched matmul, LayerNorm and the activation. On CPU in bf16 they run in
  // float32 and round once (see upcast_).
  at::Tensor MatMul(const at::Tensor& a, const at::Tensor& b) const;
  at::Tensor LayerNorm(const at::Tensor& x, const LayerNormWeights& w) const;
  at::Tensor Activate(const at::Tensor& x, Activation act) const;

  DebertaConfig config_;
  // LibTorch 1.13's CPU bf16 kernels for batched matmul, layer_norm and gelu
  // keep intermediate results in bf16 (several ulps off); torch 2.x, which HF
  // runs, and the CUDA kernels accumulate in float32 and round once. True for a
  // bf16 model on CPU: those ops then run in float32 and round to bf16.
  bool upcast_ = false;
  at::Tensor word_embeddings_;        // [V, E]
  at::Tensor token_type_embeddings_;  // [type_vocab_size, E] or undefined
  LayerNormWeights embed_norm_;
  at::Tensor rel_embeddings_;  // [2S, E]
  LayerNormWeights rel_norm_;  // when norm_rel_ebd is layer_norm
  std::vector<Layer> layers_;
  Linear pooler_;      // [E, E]
  Linear classifier_;  // [1, E]
  mutable std::mutex cache_mu_;
  mutable std::shared_ptr<const PositionProjections> cached_positions_;  // null: not computed
};

}  // namespace bpo::model

#endif  // BPO_MODEL_DEBERTA_H_
