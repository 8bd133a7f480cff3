// Generation and training-step speed on a ~20M-parameter Llama-architecture
// model with random weights (created once under $BPO_BENCH_DIR, default
// /tmp/bpo-bench-llama20m, so tools/bench_hf_generate.py can run HF on the
// same files):
//   - decode tokens/s at batch 1 and 16, 128 new tokens, with the KV cache
//     and with the naive loop that recomputes the whole prefix every step;
//   - time per cached decode step against its floor: max(weights read once /
//     memory bandwidth, 2·params·batch FLOPs / measured matmul rate);
//   - forward+backward pairs/s for one LoRA member on 128-token responses.
//
//   build/bin/generate_benchmark --benchmark_repetitions=3 --benchmark_report_aggregates_only
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "model/bench_model.h"
#include "model/causal_lm.h"
#include "model/generate.h"
#include "model/logprobs.h"
#include "model/lora.h"
#include "model/runtime.h"
#include "model/safetensors.h"

namespace bpo::model {
namespace {

at::Tensor Prompts(int64_t batch) {
  at::manual_seed(1);
  return at::randint(3, kVocab, {batch, kPrompt}, at::kLong);
}

// Decoding with the KV cache (Generate), greedy, never stopping early.
void BM_DecodeKvCache(benchmark::State& state) {
  const CausalLm& m = Model();
  const int64_t batch = state.range(0);
  const at::Tensor ids = Prompts(batch), mask = at::ones_like(ids);
  GenerateOptions o;
  o.greedy = true;
  o.max_new_tokens = kNew;
  o.eos_token_ids = {-1};
  for (auto _ : state) {
    auto g = Generate(m, ids, mask, o);
    benchmark::DoNotOptimize(g->tokens.data_ptr());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(batch * kNew),
                                                  benchmark::Counter::kIsIterationInvariantRate);
  state.counters["params"] = static_cast<double>(m.NumParameters());
}
BENCHMARK(BM_DecodeKvCache)->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

// The naive loop: every step recomputes the whole prefix.
void BM_DecodeRecompute(benchmark::State& state) {
  const CausalLm& m = Model();
  const int64_t batch = state.range(0);
  at::NoGradGuard no_grad;
  for (auto _ : state) {
    at::Tensor ids = Prompts(batch);
    for (int64_t t = 0; t < kNew; ++t) {
      const at::Tensor logits = m.ForwardLogits(ids, at::ones_like(ids));
      const at::Tensor next = logits.select(1, ids.size(1) - 1).argmax(-1, true);
      ids = at::cat({ids, next}, 1);
    }
    benchmark::DoNotOptimize(ids.data_ptr());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(batch * kNew),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DecodeRecompute)->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

// One cached decode step at a fixed context (prompt + 64 tokens), and the
// floor for it on this machine.
void BM_DecodeStepVsFloor(benchmark::State& state) {
  const CausalLm& m = Model();
  const int64_t batch = state.range(0), context = kPrompt + 64;
  at::NoGradGuard no_grad;
  KvCache cache = m.NewCache(batch, context + 1);
  const at::Tensor ids = at::randint(3, kVocab, {batch, context}, at::kLong);
  m.Forward(ids, PositionsFromMask(at::ones_like(ids)), at::ones_like(ids), &cache);
  const at::Tensor tok = at::randint(3, kVocab, {batch, 1}, at::kLong);
  const at::Tensor pos = at::full({batch, 1}, context, at::kLong),
                   one = at::ones({batch, 1}, at::kLong);
  double total = 0;
  for (auto _ : state) {
    cache.length = context;
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(m.Logits(m.Forward(tok, pos, one, &cache)).data_ptr());
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // Floor: weights read once (fp32) at the measured bandwidth, or the matmul
  // FLOPs at the measured matmul rate, whichever is larger.
  static const double gflops = *MeasureMatmulGflops(1024, 5);
  static const double gbps = [] {
    const at::Tensor big = at::ones({64 << 20}, at::kFloat);  // 256 MiB
    std::vector<double> s;
    for (int i = 0; i < 5; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(big.sum().item<float>());
      s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(s.begin(), s.end());
    return big.nbytes() / s[2] / 1e9;
  }();
  const double params = static_cast<double>(m.NumParameters());
  const double floor_s = std::max(params * 4 / (gbps * 1e9), 2 * params * batch / (gflops * 1e9));
  state.counters["floor_ms"] = floor_s * 1e3;
  state.counters["GB/s"] = gbps;
  state.counters["GFLOP/s"] = gflops;
  state.counters["x_floor"] = total / static_cast<double>(state.iterations()) / floor_s;
}
BENCHMARK(BM_DecodeStepVsFloor)->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

// Forward + backward of one LoRA member (rank 8, all linear layers) on B
// pairs = 2B sequences of a 64-token prompt and a 128-token response.
void BM_LoraMemberForwardBackward(benchmark::State& state) {
  const CausalLm& m = Model();
  const int64_t pairs = state.range(0), L = kPrompt + kNew;
  LoraOptions o;
  o.members = 1;
  o.rank = 8;
  o.alpha = 16;
  o.dropout = 0.1;
  auto lora = LoraEnsemble::Create(m, o);
  at::manual_seed(2);
  for (const at::Tensor& b : (*lora)->Parameters(0)) {
    at::NoGradGuard g;
    b.normal_(0, 0.01);
  }
  const at::Tensor ids = at::randint(3, kVocab, {2 * pairs, L}, at::kLong);
  const at::Tensor mask = at::ones_like(ids);
  at::Tensor response = at::zeros_like(ids);
  response.narrow(1, kPrompt, kNew).fill_(1);
  const LoraMember member = (*lora)->Member(0, /*training=*/true);
  for (auto _ : state) {
    const SequenceLogprobs lp = ComputeSequenceLogprobs(m, ids, mask, response, &member);
    const at::Tensor logratio = lp.sum.view({pairs, 2});
    at::Tensor loss =
        -at::log_sigmoid(0.1 * (logratio.select(1, 0) - logratio.select(1, 1))).mean();
    loss.backward();
    for (const at::Tensor& p : (*lora)->Parameters(0)) p.mutable_grad().zero_();
  }
  state.counters["pairs/s"] =
      benchmark::Counter(static_cast<double>(pairs), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_LoraMemberForwardBackward)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace bpo::model
