// Hugging Face `config.json` for the architectures bpo implements. Every
// option that changes the math is read; an architecture or option bpo does not
// implement (a rope scaling type, a different activation) is an error naming
// the file and key, never silently ignored.
#ifndef BPO_MODEL_HF_CONFIG_H_
#define BPO_MODEL_HF_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace bpo::model {

enum class Architecture { kLlama, kGemma, kGemma2 };
const char* ArchitectureName(Architecture arch);  // "LlamaForCausalLM", ...

enum class Activation { kSilu, kGeluTanh, kGelu };

struct CausalLmConfig {
  Architecture arch = Architecture::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  Activation activation = Activation::kSilu;
  // Gemma and Gemma2: embeddings scaled by sqrt(hidden_size), RMSNorm (1 + w).
  bool scale_embeddings = false;
  bool norm_adds_one = false;
  // Gemma2 only.
  bool sandwich_norms = false;         // post-attention and pre/post-feed-forward norms
  double attn_logit_softcap = 0;       // 0: off
  double final_logit_softcap = 0;      // 0: off
  double query_pre_attn_scalar = 0;    // scores scaled by its -1/2 power; 0: head_dim
  int64_t sliding_window = 0;          // 0: off
  std::vector<bool> layer_is_sliding;  // [num_layers]
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;  // the first of a list
  std::vector<int64_t> eos_token_ids;
  int64_t pad_token_id = -1;
};

// Reads and checks `<dir>/config.json` (or the file itself when `path` is a
// file). INVALID_ARGUMENT/NOT_FOUND name the file and the key.
absl::StatusOr<CausalLmConfig> LoadCausalLmConfig(const std::string& path);
absl::StatusOr<CausalLmConfig> ParseCausalLmConfig(const std::string& json_text,
                                                   const std::string& source);

}  // namespace bpo::model

#endif  // BPO_MODEL_HF_CONFIG_H_
