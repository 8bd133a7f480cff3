// A Llama-architecture model with random weights in Hugging Face's layout
// (config.json + model.safetensors), for benchmarks: the C++ ones and their
// Python peers load the same files. Weights normal(0, 0.02) from seed 0 in
// a fixed order, norms 1.
#ifndef BPO_MODEL_RANDOM_LLAMA_H_
#define BPO_MODEL_RANDOM_LLAMA_H_

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace bpo::model {

struct LlamaShape {
  int64_t vocab, hidden, inter, layers, heads, kv_heads;
  int64_t max_positions = 2048;
};

// Writes the model to `dir` (created) in `dtype` (float32 or bfloat16).
inline absl::Status WriteRandomLlama(const std::string& dir, const LlamaShape& s,
                                     at::ScalarType dtype) {
  std::filesystem::create_directories(dir);
  const nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                                 {"model_type", "llama"},
                                 {"vocab_size", s.vocab},
                                 {"hidden_size", s.hidden},
                                 {"intermediate_size", s.inter},
                                 {"num_hidden_layers", s.layers},
                                 {"num_attention_heads", s.heads},
                                 {"num_key_value_heads", s.kv_heads},
                                 {"max_position_embeddings", s.max_positions},
                                 {"rms_norm_eps", 1e-5},
                                 {"rope_theta", 10000.0},
                                 {"hidden_act", "silu"},
                                 {"tie_word_embeddings", false},
                                 {"bos_token_id", 1},
                                 {"eos_token_id", 2},
                                 {"torch_dtype", dtype == at::kBFloat16 ? "bfloat16" : "float32"}};
  std::ofstream(dir + "/config.json") << config.dump(2) << "\n";
  at::manual_seed(0);
  std::vector<std::pair<std::string, at::Tensor>> w;
  auto normal = [&](std::vector<int64_t> shape) { return (at::randn(shape) * 0.02).to(dtype); };
  auto ones = [&](int64_t n) { return at::ones({n}, at::TensorOptions().dtype(dtype)); };
  w.emplace_back("model.embed_tokens.weight", normal({s.vocab, s.hidden}));
  w.emplace_back("lm_head.weight", normal({s.vocab, s.hidden}));
  w.emplace_back("model.norm.weight", ones(s.hidden));
  const int64_t hd = s.hidden / s.heads;
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    w.emplace_back(p + "input_layernorm.weight", ones(s.hidden));
    w.emplace_back(p + "post_attention_layernorm.weight", ones(s.hidden));
    w.emplace_back(p + "self_attn.q_proj.weight", normal({s.heads * hd, s.hidden}));
    w.emplace_back(p + "self_attn.k_proj.weight", normal({s.kv_heads * hd, s.hidden}));
    w.emplace_back(p + "self_attn.v_proj.weight", normal({s.kv_heads * hd, s.hidden}));
    w.emplace_back(p + "self_attn.o_proj.weight", normal({s.hidden, s.heads * hd}));
    w.emplace_back(p + "mlp.gate_proj.weight", normal({s.inter, s.hidden}));
    w.emplace_back(p + "mlp.up_proj.weight", normal({s.inter, s.hidden}));
    w.emplace_back(p + "mlp.down_proj.weight", normal({s.hidden, s.inter}));
  }
  return WriteSafetensors(dir + "/model.safetensors", w);
}

}  // namespace bpo::model

#endif  // BPO_MODEL_RANDOM_LLAMA_H_
