// gpu_bench: decode and learner-step speed of one device, each against its
// floor, written as one JSON report (scripts/gpu-check runs it; docs/gpu.md).
//
//   gpu_bench --device=cuda --dtype=bfloat16 --size=1b --model_dir=/tmp/llama-1b --json=out.json
//
// The model is a Llama-architecture model with random weights, written once to
// --model_dir in Hugging Face's layout so that tools/bench_hf_generate.py
// decodes the very same files: --size=1b is TinyLlama-1.1B's shape (hidden
// 2048, 22 layers, 32 heads / 4 kv-heads, MLP 5632, vocab 32000, 1.10B
// parameters); --size=20m is the CPU benchmark model's (model/bench_model.h).
//
// Measured on the device first: the memory bandwidth (a device-to-device copy
// of 1 GiB, 256 MiB on the CPU, counting bytes read and written) and the
// matmul rate in --dtype (n = 8192, 1024 on the CPU). Then:
//  - decode: greedy, --prompt tokens of prompt, exactly --new new tokens with
//    the KV cache, at each --batches; the floor of one run is the prefill's
//    FLOPs at the matmul rate plus, for every decode step, the larger of
//    (weights + the KV cache read once) / bandwidth and the step's FLOPs /
//    matmul rate;
//  - learner step: --pairs pairs of --prompt + --new tokens, DPO against the
//    behavior snapshot, LoRA rank --lora_rank on all linear layers, for each
//    --members; the floor is the step's matmul FLOPs at the measured rate
//    (per member a forward and an input-gradient backward, about two
//    forwards; plus the reference and SFT forwards; plus the LoRA factors).
// Every time is the median of --reps runs after one warm-up.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#ifdef BPO_TORCH_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "learner/trainer.h"
#include "model/causal_lm.h"
#include "model/generate.h"
#include "model/lora.h"
#include "model/policy.h"
#include "model/random_llama.h"
#include "model/runtime.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, device, "cuda", "cpu, cuda or cuda:N");
ABSL_FLAG(std::string, dtype, "bfloat16", "bfloat16 or float32");
ABSL_FLAG(std::string, size, "1b", "1b (TinyLlama-1.1B's shape) or 20m");
ABSL_FLAG(std::string, model_dir, "", "where the random model is (written there when absent)");
ABSL_FLAG(std::string, batches, "1,16,64", "decode batch sizes");
ABSL_FLAG(int, prompt, 64, "prompt tokens");
ABSL_FLAG(int, new_tokens, 128, "new tokens per row (decode) and response tokens (learner)");
ABSL_FLAG(int, pairs, 16, "pairs per learner step");
ABSL_FLAG(std::string, members, "1,5", "LoRA ensemble sizes for the learner step");
ABSL_FLAG(int, lora_rank, 64, "LoRA rank for the learner step");
ABSL_FLAG(int, reps, 3, "timed runs per measurement (after one warm-up)");
ABSL_FLAG(std::string, json, "", "write the report here (else stdout)");

namespace bpo {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

void Sync(const at::Device& device) {
#ifdef BPO_TORCH_HAS_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#endif
}

template <typename F>
double MedianSeconds(const at::Device& device, int reps, F&& f) {
  f();  // warm-up
  Sync(device);
  std::vector<double> s;
  for (int i = 0; i < reps; ++i) {
    const auto start = Clock::now();
    f();
    Sync(device);
    s.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::nth_element(s.begin(), s.begin() + reps / 2, s.end());
  return s[reps / 2];
}

// The random model, unless the directory already holds it.
absl::Status EnsureModel(const std::string& dir, const model::LlamaShape& s, at::ScalarType dtype) {
  if (std::filesystem::exists(dir + "/model.safetensors")) return absl::OkStatus();
  return model::WriteRandomLlama(dir, s, dtype);
}

std::vector<int64_t> ParseList(const std::string& text, const char* flag) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1) {
      std::cerr << "gpu_bench: --" << flag << "='" << text << "': expected positive integers\n";
      std::exit(2);
    }
    out.push_back(v);
  }
  return out;
}

json DeviceInfo(const at::Device& device) {
  json info = {{"device", device.str()}, {"libtorch", model::GetRuntimeInfo().libtorch_version}};
#ifdef BPO_TORCH_HAS_CUDA
  if (device.is_cuda()) {
    const cudaDeviceProp* p = at::cuda::getDeviceProperties(device.index());
    info["name"] = p->name;
    info["memory_gib"] = static_cast<double>(p->totalGlobalMem) / (1 << 30);
    info["multiprocessors"] = p->multiProcessorCount;
    info["compute_capability"] = absl::StrCat(p->major, ".", p->minor);
  }
#endif
  if (device.is_cpu()) info["threads"] = at::get_num_threads();
  return info;
}

double PeakGib(const at::Device& device) {
#ifdef BPO_TORCH_HAS_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    const auto& peak =
        stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    return static_cast<double>(peak.peak) / (1 << 30);
  }
#endif
  return -1;
}

void ResetPeak(const at::Device& device) {
#ifdef BPO_TORCH_HAS_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

int Main() {
  const std::string size = absl::GetFlag(FLAGS_size);
  model::LlamaShape shape;
  if (size == "1b") {
    shape = {32000, 2048, 5632, 22, 32, 4, 2048};
  } else if (size == "20m") {
    shape = {32000, 256, 688, 4, 8, 4, 2048};
  } else {
    std::cerr << "gpu_bench: --size='" << size << "': expected 1b or 20m\n";
    return 2;
  }
  auto load = model::ProcessLoadOptions(absl::GetFlag(FLAGS_dtype), absl::GetFlag(FLAGS_device));
  if (!load.ok()) {
    std::cerr << "gpu_bench: " << load.status() << "\n";
    return 2;
  }
  const at::Device device = load->device;
  const at::ScalarType dtype = load->dtype;
  const int reps = std::max(1, absl::GetFlag(FLAGS_reps));
  const int64_t P = absl::GetFlag(FLAGS_prompt), T = absl::GetFlag(FLAGS_new_tokens);
  const std::vector<int64_t> batches = ParseList(absl::GetFlag(FLAGS_batches), "batches");
  const std::vector<int64_t> member_counts = ParseList(absl::GetFlag(FLAGS_members), "members");
  std::string dir = absl::GetFlag(FLAGS_model_dir);
  if (dir.empty()) dir = absl::StrCat("/tmp/bpo-gpu-bench-llama-", size);
  json report = {{"tool", "gpu_bench"}, {"runtime", DeviceInfo(device)}};
  report["settings"] = {{"dtype", absl::GetFlag(FLAGS_dtype)},
                        {"size", size},
                        {"model_dir", dir},
                        {"prompt_tokens", P},
                        {"new_tokens", T},
                        {"reps", reps}};
  const int64_t bytes_per = at::elementSize(dtype);

  // The device's own rates.
  at::NoGradGuard no_grad;
  const int64_t copy_bytes = device.is_cuda() ? (int64_t{1} << 30) : (int64_t{256} << 20);
  at::Tensor src = at::ones({copy_bytes}, at::TensorOptions().dtype(at::kByte).device(device));
  at::Tensor dst = at::empty_like(src);
  const double copy_s = MedianSeconds(device, std::max(reps, 5), [&] { dst.copy_(src); });
  const double bandwidth = 2.0 * static_cast<double>(copy_bytes) / copy_s;
  src = at::Tensor();
  dst = at::Tensor();
  const int64_t n = device.is_cuda() ? 8192 : 1024;
  at::manual_seed(0);
  const at::Tensor a = at::randn({n, n}, at::TensorOptions().device(device)).to(dtype);
  const at::Tensor b = at::randn({n, n}, at::TensorOptions().device(device)).to(dtype);
  const double mm_s = MedianSeconds(device, std::max(reps, 5), [&] { (void)at::mm(a, b); });
  const double flop_rate = 2.0 * n * n * static_cast<double>(n) / mm_s;
  report["device_rates"] = {{"copy_bytes", copy_bytes},
                            {"bandwidth_gb_s", bandwidth / 1e9},
                            {"matmul_n", n},
                            {"matmul_tflop_s", flop_rate / 1e12}};
  std::cerr << "gpu_bench: " << device.str() << ": " << bandwidth / 1e9 << " GB/s, "
            << flop_rate / 1e12 << " TFLOP/s (" << absl::GetFlag(FLAGS_dtype) << " matmul)\n";

  if (absl::Status s = EnsureModel(dir, shape, dtype); !s.ok()) {
    std::cerr << "gpu_bench: writing the model to " << dir << ": " << s << "\n";
    return 1;
  }
  auto loaded = model::CausalLm::Load(dir, *load);
  if (!loaded.ok()) {
    std::cerr << "gpu_bench: " << loaded.status() << "\n";
    return 1;
  }
  const model::CausalLm& m = **loaded;
  const double params = static_cast<double>(m.NumParameters());
  const double head = static_cast<double>(shape.vocab * shape.hidden);
  const double body = params - 2 * head;  // without the embedding and the output projection
  report["model"] = {{"params", params}, {"weights_gib", params * bytes_per / (1 << 30)}};

  // Decode.
  json decode = json::array();
  const int64_t hd = shape.hidden / shape.heads;
  for (int64_t B : batches) {
    const at::Tensor ids = at::randint(3, shape.vocab, {B, P}, at::kLong);
    const at::Tensor mask = at::ones_like(ids);
    model::GenerateOptions o;
    o.greedy = true;
    o.max_new_tokens = T;
    o.eos_token_ids = {-1};
    ResetPeak(device);
    absl::Status failed;
    const double s = MedianSeconds(device, reps, [&] {
      auto g = model::Generate(m, ids, mask, o);
      if (!g.ok()) failed = g.status();
    });
    if (!failed.ok()) {
      std::cerr << "gpu_bench: decode batch " << B << ": " << failed << "\n";
      return 1;
    }
    // Floor: the prefill's FLOPs, then per step max(bytes, FLOPs).
    double floor = 2.0 * (body + head) * static_cast<double>(B * P) / flop_rate;
    for (int64_t t = 1; t < T; ++t) {
      const double kv =
          2.0 * shape.layers * shape.kv_heads * hd * static_cast<double>(P + t) * B * bytes_per;
      const double bytes =
          params * bytes_per - head * bytes_per + kv;  // embedding rows: negligible
      const double flops = 2.0 * (body + head) * static_cast<double>(B);
      floor += std::max(bytes / bandwidth, flops / flop_rate);
    }
    decode.push_back({{"batch", B},
                      {"seconds", s},
                      {"tokens_per_s", static_cast<double>(B * T) / s},
                      {"floor_seconds", floor},
                      {"vs_floor", s / floor},
                      {"peak_gib", PeakGib(device)}});
    std::cerr << "gpu_bench: decode batch " << B << ": " << B * T / s << " tokens/s, " << s / floor
              << "x the floor\n";
  }
  report["decode"] = decode;

  // Learner step.
  json steps = json::array();
  const int64_t pairs = absl::GetFlag(FLAGS_pairs);
  learner::PairBatch batch;
  batch.input_ids = at::randint(3, shape.vocab, {2 * pairs, P + T}, at::kLong);
  batch.attention_mask = at::ones_like(batch.input_ids);
  batch.response_mask = at::zeros_like(batch.input_ids);
  batch.response_mask.narrow(1, P, T).fill_(1);
  batch.behavior_versions.assign(pairs, 0);
  for (int64_t members : member_counts) {
    model::LoraOptions lo;
    lo.members = static_cast<int>(members);
    lo.rank = absl::GetFlag(FLAGS_lora_rank);
    lo.alpha = 2.0 * lo.rank;
    lo.dropout = 0.1;
    auto lora = model::LoraEnsemble::Create(m, lo);
    if (!lora.ok()) {
      std::cerr << "gpu_bench: " << lora.status() << "\n";
      return 1;
    }
    learner::TrainerOptions to;
    to.total_steps = 1000;
    learner::EnsembleTrainer trainer(&m, lora->get(), to);
    trainer.SetBehaviorSnapshot(0, (*lora)->Merge(to.merge_mode));
    ResetPeak(device);
    absl::Status failed;
    const double s = MedianSeconds(device, reps, [&] {
      at::AutoGradMode grad(true);
      auto metrics = trainer.Step(batch);
      if (!metrics.ok()) failed = metrics.status();
    });
    if (!failed.ok()) {
      std::cerr << "gpu_bench: learner step, " << members << " member(s): " << failed << "\n";
      return 1;
    }
    // One forward: every linear of the body on all tokens, the output
    // projection where a label is predicted, the LoRA factors (r·(in+out)
    // per linear) on all tokens.
    const double tokens = 2.0 * pairs * (P + T), labels = 2.0 * pairs * T;
    const double lora_params =
        static_cast<double>(lo.rank) * shape.layers *
        (2.0 * (shape.hidden + shape.heads * hd) + 2.0 * (shape.hidden + shape.kv_heads * hd) +
         3.0 * (shape.hidden + shape.inter));
    const double forward = 2 * (body * tokens + head * labels);
    // LoRA: a forward and a backward (input and factor gradients) per member,
    // and the behavior snapshot's merged rank-E·r adapter in the reference.
    const double flops =
        forward * (2.0 * members + 2.0) + 2.0 * lora_params * tokens * 4.0 * members;
    const double floor = flops / flop_rate;
    steps.push_back({{"members", members},
                     {"lora_rank", lo.rank},
                     {"pairs", pairs},
                     {"tokens_per_sequence", P + T},
                     {"seconds", s},
                     {"pairs_per_s", static_cast<double>(pairs) / s},
                     {"floor_seconds", floor},
                     {"vs_floor", s / floor},
                     {"peak_gib", PeakGib(device)}});
    std::cerr << "gpu_bench: learner step, " << members << " member(s): " << s << " s, "
              << s / floor << "x the floor\n";
  }
  report["learner_step"] = steps;

  const std::string out = report.dump(2);
  const std::string path = absl::GetFlag(FLAGS_json);
  if (path.empty()) {
    std::cout << out << "\n";
  } else {
    std::ofstream(path) << out << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace bpo

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("gpu_bench: decode and learner-step speed against their floors");
  absl::ParseCommandLine(argc, argv);
  return bpo::Main();
}
