// Cost of recording a metric: a kept handle (what bpo code does) against
// looking the child up by labels on every update (the pattern to avoid).
//   build/bin/metrics_benchmark --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include "common/metrics.h"

namespace bpo::metrics {
namespace {

void BM_CounterKeptHandle(benchmark::State& state) {
  Registry registry;
  Counter& c = registry.AddCounter("c_total", "x", {"state"}).value()->Add({{"state", "a"}});
  for (auto _ : state) c.Increment();
  benchmark::DoNotOptimize(c.Value());
}
BENCHMARK(BM_CounterKeptHandle)->ThreadRange(1, 2);

void BM_CounterLabelLookup(benchmark::State& state) {
  Registry registry;
  Family<Counter>* family = registry.AddCounter("c_total", "x", {"state"}).value();
  for (int i = 0; i < 8; ++i) family->Add({{"state", std::to_string(i)}});
  for (auto _ : state) family->Add({{"state", "a"}}).Increment();
}
BENCHMARK(BM_CounterLabelLookup)->ThreadRange(1, 2);

void BM_HistogramObserve(benchmark::State& state) {
  Registry registry;
  Histogram& h =
      registry.AddHistogram("h_seconds", "x", ExponentialBuckets(1e-4, 2, 20)).value()->Add({});
  double v = 1e-4;
  for (auto _ : state) {
    h.Observe(v);
    v = v < 10 ? v * 1.1 : 1e-4;
  }
}
BENCHMARK(BM_HistogramObserve);

// One scrape of a process with `range(0)` labelled series and two histograms.
void BM_Render(benchmark::State& state) {
  Registry registry;
  Family<Gauge>* g = registry.AddGauge("g", "x", {"worker"}).value();
  for (int i = 0; i < state.range(0); ++i) g->Add({{"worker", std::to_string(i)}}).Set(i);
  for (int i = 0; i < 2; ++i) {
    registry.AddHistogram("h" + std::to_string(i), "x", ExponentialBuckets(1e-4, 2, 20))
        .value()
        ->Add({})
        .Observe(0.5);
  }
  size_t bytes = 0;
  for (auto _ : state) bytes = registry.Render().size();
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Render)->Arg(10)->Arg(1000);

}  // namespace
}  // namespace bpo::metrics
