// Decoder-only causal LMs in Hugging Face format: LlamaForCausalLM,
// GemmaForCausalLM and Gemma2ForCausalLM, one implementation driven by
// config.json. Weights are plain tensors; LoRA adapters plug in through
// LinearAdapter. fp32 or bf16, CPU or CUDA.
//
// Shapes: B batch, S new tokens, T keys (cached + new), H heads, KV kv-heads,
// D head_dim, E hidden_size, V vocab.
#ifndef BPO_MODEL_CAUSAL_LM_H_
#define BPO_MODEL_CAUSAL_LM_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "model/hf_config.h"

namespace bpo::model {

// The linear layers of a decoder layer, in the order HF names them.
enum class LinearKind { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLinearKinds = 7;
// "q_proj", ..., "down_proj"; and "self_attn" or "mlp" for the parent.
const char* LinearName(LinearKind kind);
const char* LinearParent(LinearKind kind);

// Adds a low-rank update to a linear layer's output. Implemented by LoRA
// ensembles; `nullptr` means the base model.
class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // x: [.., in]; returns the delta [.., out] to add, or an undefined tensor.
  virtual at::Tensor Delta(int64_t layer, LinearKind kind, const at::Tensor& x) const = 0;
};

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined
};

struct DecoderLayer {
  at::Tensor input_norm;      // [E]
  at::Tensor post_attn_norm;  // [E]
  at::Tensor pre_ffn_norm;    // [E], Gemma2 only
  at::Tensor post_ffn_norm;   // [E], Gemma2 only
  Linear linear[kNumLinearKinds];
};

// Keys and values of every layer for the tokens seen so far.
struct KvCache {
  std::vector<at::Tensor> k;  // per layer [B, KV, capacity, D]
  std::vector<at::Tensor> v;  // per layer [B, KV, capacity, D]
  at::Tensor key_mask;        // [B, capacity] bool: 1 where a real token sits
  int64_t length = 0;         // filled positions

  // Keeps rows `index` (e.g. to share a prompt's prefill between samples).
  void SelectRows(const at::Tensor& index);
};

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;  // kFloat or kBFloat16
  at::Device device = at::kCPU;
};

class CausalLm {
 public:
  // Loads config.json and the safetensors weights of an HF directory. Errors
  // name the file and the tensor or key (missing, unexpected or misshapen
  // tensors, unsupported options).
  static absl::StatusOr<std::unique_ptr<CausalLm>> Load(const std::string& dir,
                                                        const LoadOptions& options = {});

  const CausalLmConfig& config() const { return config_; }
  at::TensorOptions options() const { return embed_.options(); }
  int64_t NumParameters() const;

  // An empty cache with room for `capacity` positions of `batch` rows.
  KvCache NewCache(int64_t batch, int64_t capacity) const;

  // Runs input_ids [B, S] (int64) at position_ids [B, S]. `key_mask` [B, T]
  // marks the real tokens among cached + new positions (padding is 0); T is
  // cache->length + S, or S without a cache. Appends to the cache when given.
  // Returns final hidden states [B, S, E] (after the final norm).
  at::Tensor Forward(const at::Tensor& input_ids, const at::Tensor& position_ids,
                     const at::Tensor& key_mask, KvCache* cache,
                     const LinearAdapter* adapter = nullptr) const;

  // Logits [.., V] in float32 from hidden states (final soft-capping applied).
  at::Tensor Logits(const at::Tensor& hidden) const;

  // Convenience: Logits(Forward(...)) without a cache. attention_mask [B, S].
  at::Tensor ForwardLogits(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                           const LinearAdapter* adapter = nullptr) const;

  // Every weight under its Hugging Face name, as handles sharing the model's
  // storage (set requires_grad on them to train the whole model; write them
  // with WriteSafetensors to save it). A tied lm_head is listed once, as the
  // embedding.
  std::vector<std::pair<std::string, at::Tensor>> NamedParameters() const;

  const DecoderLayer& layer(int64_t i) const { return layers_[i]; }
  DecoderLayer& mutable_layer(int64_t i) { return layers_[i]; }

 private:
  // Load without the exception boundary (Load catches LibTorch's errors).
  static absl::StatusOr<std::unique_ptr<CausalLm>> LoadUnguarded(const std::string& dir,
                                                                 const LoadOptions& options);
  CausalLm() = default;
  at::Tensor Norm(const at::Tensor& x, const at::Tensor& w) const;
  at::Tensor Project(const at::Tensor& x, int64_t layer, LinearKind kind,
                     const LinearAdapter* adapter) const;
  at::Tensor Attention(const at::Tensor& x, int64_t layer, const at::Tensor& cos,
                       const at::Tensor& sin, const at::Tensor& mask, KvCache* cache,
                       const LinearAdapter* adapter) const;

  CausalLmConfig config_;
  at::Tensor embed_;       // [V, E]
  at::Tensor final_norm_;  // [E]
  at::Tensor lm_head_;     // [V, E]; the embedding when tied
  at::Tensor inv_freq_;    // [D/2] float32
  std::vector<DecoderLayer> layers_;
};

// The activation function `act` applied to x (in x's dtype).
at::Tensor ApplyActivation(const at::Tensor& x, Activation act);

// Position ids for left-padded rows: cumsum(mask) - 1, clipped at 0. [B, S].
at::Tensor PositionsFromMask(const at::Tensor& attention_mask);

}  // namespace bpo::model

#endif  // BPO_MODEL_CAUSAL_LM_H_
