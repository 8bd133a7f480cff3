#include "common/metrics.h"

#include <thread>
#include <vector>

#include "common/process_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, RendersTheTextExpositionFormat) {
  Registry registry;
  auto* pairs = registry.AddCounter("bpo_pairs_total", "Pairs by state.", {"state"}).value();
  auto* step = registry.AddGauge("bpo_learner_step", "Committed learner step.").value();
  auto* latency = registry
                      .AddHistogram("bpo_rpc_seconds", "RPC latency.\nIn seconds \\ wall.",
                                    {0.25, 0.5, 1}, {"method"})
                      .value();
  pairs->Add({{"state", "annotated"}}).Increment(3);
  pairs->Add({{"state", "consumed"}}).Increment();
  pairs->Add({{"state", "consumed"}}).Increment(-5);  // ignored: counters only go up
  step->Add({}).Set(42);
  Histogram& h = latency->Add({{"method", "Fetch\"Batch\""}});
  h.Observe(0.25);  // on a bound: counted in that bucket
  h.Observe(0.75);
  h.Observe(7);

  EXPECT_EQ(registry.Render(),
            "# HELP bpo_pairs_total Pairs by state.\n"
            "# TYPE bpo_pairs_total counter\n"
            "bpo_pairs_total{state=\"annotated\"} 3\n"
            "bpo_pairs_total{state=\"consumed\"} 1\n"
            "# HELP bpo_learner_step Committed learner step.\n"
            "# TYPE bpo_learner_step gauge\n"
            "bpo_learner_step 42\n"
            "# HELP bpo_rpc_seconds RPC latency.\\nIn seconds \\\\ wall.\n"
            "# TYPE bpo_rpc_seconds histogram\n"
            "bpo_rpc_seconds_bucket{le=\"0.25\",method=\"Fetch\\\"Batch\\\"\"} 1\n"
            "bpo_rpc_seconds_bucket{le=\"0.5\",method=\"Fetch\\\"Batch\\\"\"} 1\n"
            "bpo_rpc_seconds_bucket{le=\"1\",method=\"Fetch\\\"Batch\\\"\"} 2\n"
            "bpo_rpc_seconds_bucket{le=\"+Inf\",method=\"Fetch\\\"Batch\\\"\"} 3\n"
            "bpo_rpc_seconds_sum{method=\"Fetch\\\"Batch\\\"\"} 8\n"
            "bpo_rpc_seconds_count{method=\"Fetch\\\"Batch\\\"\"} 3\n");
}

TEST(MetricsTest, HandlesAreStableAndSharedPerLabelSet) {
  Registry registry;
  auto* family = registry.AddGauge("g", "help", {"a", "b"}).value();
  Gauge& x = family->Add({{"a", "1"}, {"b", "2"}});
  Gauge& y = family->Add({{"b", "2"}, {"a", "1"}});
  EXPECT_EQ(&x, &y);
  for (int i = 0; i < 100; ++i) family->Add({{"a", std::to_string(i)}, {"b", "x"}});
  x.Increment(2.5);
  x.Decrement(1);
  EXPECT_DOUBLE_EQ(y.Value(), 1.5);
}

TEST(MetricsTest, RegistrationErrors) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("bpo_x_total", "x").ok());
  EXPECT_EQ(registry.AddGauge("bpo_x_total", "again").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddCounter("9lives", "x").status().message(),
            "metric name '9lives' must match [a-zA-Z_:][a-zA-Z0-9_:]*");
  EXPECT_EQ(registry.AddCounter("ok_total", "x", {"__reserved"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddCounter("ok2_total", "x", {"a", "a"}).status().message(),
            "metric ok2_total: duplicate label names");
  EXPECT_EQ(registry.AddHistogram("h", "x", {1, 1}).status().message(),
            "metric h: buckets must be finite and strictly increasing");
  EXPECT_EQ(registry.AddHistogram("h2", "x", {1}, {"le"}).status().message(),
            "metric h2: histograms cannot have a label named 'le'");
}

TEST(MetricsDeathTest, WrongLabelNamesAbort) {
  Registry registry;
  auto* family = registry.AddCounter("c_total", "x", {"state"}).value();
  EXPECT_DEATH(family->Add({{"stat", "typo"}}), "family c_total has labels \\{state\\}");
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  Registry registry;
  Counter& c = registry.AddCounter("c_total", "x").value()->Add({});
  Histogram& h = registry.AddHistogram("h", "x", {0.5}).value()->Add({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.Increment();
        h.Observe(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_DOUBLE_EQ(c.Value(), 40000);
  EXPECT_EQ(h.Collect().count, 40000u);
  EXPECT_DOUBLE_EQ(h.Collect().sum, 40000);
}

TEST(MetricsTest, FormatValue) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(1e-6), "1e-06");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(123456789012.0), "123456789012");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatValue(0.0 / 0.0), "NaN");
  EXPECT_EQ(ExponentialBuckets(0.001, 10, 4), (std::vector<double>{0.001, 0.01, 0.1, 1}));
}

TEST(ProcessMetricsTest, ReadsThisProcess) {
  // Burn some CPU and memory so the numbers are visibly non-zero.
  std::vector<double> v(1 << 22, 1.0);
  double sum = 0;
  for (int r = 0; r < 20; ++r) {
    for (double x : v) sum += x;
  }
  EXPECT_GT(sum, 0);
  auto s = ReadProcessSample();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->cpu_seconds, 0);
  EXPECT_GT(s->resident_bytes, 32.0 * (1 << 20));  // the 32 MiB vector is resident
  EXPECT_GE(s->open_fds, 3);
  EXPECT_GE(s->uptime_seconds, 0);
  EXPECT_LT(s->uptime_seconds, 600);

  Registry registry;
  registry.AddCollector(MakeProcessCollector("test"));
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter\n"));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes "));
  EXPECT_THAT(text, HasSubstr("bpo_process_uptime_seconds "));
  EXPECT_THAT(
      text, HasSubstr("bpo_build_info{component=\"test\",version=\"" BPO_VERSION_STRING "\"} 1\n"));
}

}  // namespace
}  // namespace bpo::metrics
