// Learner step time on the ~20M-parameter benchmark model (model/bench_model.h):
// 8 pairs of a 64-token prompt and 128-token responses, DPO against the
// behavior snapshot, LoRA rank 8 on all linear layers, E = 1 and E = 5
// members, one rank. The floor is the step's matmul FLOPs at this machine's
// measured matmul rate: per member a forward and a backward that computes
// input gradients only (frozen base), about 2 forwards, plus the reference
// and SFT forwards.
//   build/bin/trainer_benchmark --benchmark_repetitions=3 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include "learner/trainer.h"
#include "model/bench_model.h"
#include "model/runtime.h"

namespace bpo::learner {
namespace {

using model::kNew;
using model::kPrompt;
constexpr int64_t kPairs = 8;

PairBatch Batch() {
  at::manual_seed(4);
  PairBatch b;
  b.input_ids = at::randint(3, model::kVocab, {2 * kPairs, kPrompt + kNew}, at::kLong);
  b.attention_mask = at::ones_like(b.input_ids);
  b.response_mask = at::zeros_like(b.input_ids);
  b.response_mask.narrow(1, kPrompt, kNew).fill_(1);
  b.behavior_versions.assign(kPairs, 0);
  return b;
}

void BM_LearnerStep(benchmark::State& state) {
  const model::CausalLm& m = model::Model();
  model::LoraOptions lo;
  lo.members = static_cast<int>(state.range(0));
  lo.rank = 8;
  lo.alpha = 16;
  lo.dropout = 0.1;
  auto lora = model::LoraEnsemble::Create(m, lo);
  TrainerOptions o;
  o.total_steps = 1000;
  EnsembleTrainer trainer(&m, lora->get(), o);
  trainer.SetBehaviorSnapshot(0, (*lora)->Merge(o.merge_mode));
  const PairBatch batch = Batch();
  for (auto _ : state) {
    auto metrics = trainer.Step(batch);
    if (!metrics.ok()) state.SkipWithError(std::string(metrics.status().message()).c_str());
  }
  // FLOPs of one forward: every linear of the body on all tokens, the output
  // projection only where a label is predicted.
  const auto& c = m.config();
  const double tokens = 2.0 * kPairs * (kPrompt + kNew), labels = 2.0 * kPairs * kNew;
  const double body = static_cast<double>(m.NumParameters() - 2 * c.vocab_size * c.hidden_size);
  const double forward =
      2 * (body * tokens + static_cast<double>(c.vocab_size * c.hidden_size) * labels);
  const double flops = forward * (2.0 * lo.members + 2.0);
  static const double gflops = *model::MeasureMatmulGflops(1024, 5);
  state.counters["floor_s"] = flops / (gflops * 1e9);
  state.counters["s/pair"] = benchmark::Counter(
      static_cast<double>(kPairs),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["GFLOP/s_matmul"] = gflops;
}
BENCHMARK(BM_LearnerStep)
    ->Arg(1)
    ->Arg(5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

}  // namespace
}  // namespace bpo::learner
