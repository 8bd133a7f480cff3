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
#include "model/random_llama.h"

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
  const LlamaShape shape{kVocab, kHidden, kInter, kLayers, kHeads, kKvHeads, 512};
  if (!WriteRandomLlama(dir, shape, at::kFloat).ok()) std::abort();
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
