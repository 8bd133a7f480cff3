// The ~20M-parameter Llama-architecture benchmark model: random weights
// written once under $BPO_BENCH_DIR (default /tmp/bpo-bench-llama20m) in HF
// layout, so the Python peers (tools/bench_*.py) load the same files.
#ifndef BPO_MODEL_BENCH_MODEL_H_
#define BPO_MODEL_BENCH_MODEL_H_

#include <ATen/ATen.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/allocator.h"
#include "model/causal_lm.h"
#include "model/safetensors.h"

namespace bpo::model {

inline constexpr int64_t kVocab = 32000, kHidden = 256, kInter = 688, kLayers = 4, kHeads = 8,
                         kKvHeads = 4, kPrompt = 64, kNew = 128;

// The benchmarks run with the allocator settings of the bpo binary.
inline const bool kAllocatorTuned = TuneAllocatorForTensors();

inline std::string BenchDir() {
  const char* env = std::getenv("BPO_BENCH_DIR");
  return env != nullptr ? env : "/tmp/bpo-bench-llama20m";
}

// Writes the random model once (HF layout, fp32 safetensors).
inline void EnsureModel() {
  const std::string dir = BenchDir();
  if (std::filesystem::exists(dir + "/model.safetensors")) return;
  std::filesystem::create_directories(dir);
  // The real Llama-2 tokenizer (32,000 pieces, the model's vocabulary), when
  // the shared data is beside the repository, so `bpo learner` can run on it.
  const std::string tokenizer =
      std::string(BPO_SOURCE_DIR_FOR_BENCH) + "/../shared/data/tokenizers/llama2-tokenizer.model";
  std::error_code ec;
  std::filesystem::copy_file(tokenizer, dir + "/tokenizer.model", ec);
  std::ofstream(dir + "/config.json") << R"({"architectures": ["LlamaForCausalLM"],
    "model_type": "llama", "vocab_size": 32000, "hidden_size": 256, "intermediate_size": 688,
    "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "hidden_act": "silu", "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
    "torch_dtype": "float32"})";
  at::manual_seed(0);
  std::vector<std::pair<std::string, at::Tensor>> w;
  auto normal = [](std::vector<int64_t> shape) { return at::randn(shape) * 0.02; };
  w.emplace_back("model.embed_tokens.weight", normal({kVocab, kHidden}));
  w.emplace_back("lm_head.weight", normal({kVocab, kHidden}));
  w.emplace_back("model.norm.weight", at::ones({kHidden}));
  const int64_t hd = kHidden / kHeads;
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.emplace_back(p + "input_layernorm.weight", at::ones({kHidden}));
    w.emplace_back(p + "post_attention_layernorm.weight", at::ones({kHidden}));
    w.emplace_back(p + "self_attn.q_proj.weight", normal({kHeads * hd, kHidden}));
    w.emplace_back(p + "self_attn.k_proj.weight", normal({kKvHeads * hd, kHidden}));
    w.emplace_back(p + "self_attn.v_proj.weight", normal({kKvHeads * hd, kHidden}));
    w.emplace_back(p + "self_attn.o_proj.weight", normal({kHidden, kHeads * hd}));
    w.emplace_back(p + "mlp.gate_proj.weight", normal({kInter, kHidden}));
    w.emplace_back(p + "mlp.up_proj.weight", normal({kInter, kHidden}));
    w.emplace_back(p + "mlp.down_proj.weight", normal({kHidden, kInter}));
  }
  if (!WriteSafetensors(dir + "/model.safetensors", w).ok()) std::abort();
}

inline const CausalLm& Model() {
  static const CausalLm* model = [] {
    EnsureModel();
    auto m = CausalLm::Load(BenchDir());
    if (!m.ok()) std::abort();
    return m->release();
  }();
  return *model;
}

}  // namespace bpo::model

#endif  // BPO_MODEL_BENCH_MODEL_H_
