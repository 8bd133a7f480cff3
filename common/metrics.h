// Prometheus metrics in the shape of prometheus-cpp: families with help text
// and label names are registered once at start-up, the handles they return
// are kept, and hot paths only touch atomics. Render() writes the text
// exposition format 0.0.4 served at /metrics (common/metrics_server.h).
//
//   metrics::Registry registry;
//   auto* pairs = registry.AddCounter("bpo_pairs_total", "Pairs by state", {"state"}).value();
//   metrics::Counter& annotated = pairs->Add({{"state", "annotated"}});
//   annotated.Increment();  // lock-free
//
// Thread safety: every method of every class here is thread-safe. Handles
// live as long as the registry.
#ifndef BPO_COMMON_METRICS_H_
#define BPO_COMMON_METRICS_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace bpo::metrics {

using Labels = std::map<std::string, std::string>;

// A value that only goes up (`_total` names). Negative increments are ignored.
class Counter {
 public:
  void Increment(double delta = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Increment(double delta = 1.0);
  void Decrement(double delta = 1.0) { Increment(-delta); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into explicit buckets (upper bounds, strictly
// increasing; +Inf is implicit) and keeps their sum.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative_counts;  // [bounds.size() + 1], last is +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Collect() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // [bounds_.size() + 1]
  std::atomic<double> sum_{0.0};
};

// Anything that writes samples into an exposition.
class Collector {
 public:
  virtual ~Collector() = default;
  virtual void Collect(std::string* out) const = 0;
};

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric name with its help text and label names; one child per label set.
template <typename T>
class Family : public Collector {
 public:
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         std::vector<double> buckets = {});

  // The child for these labels, created on first use. The label names must be
  // exactly the family's (a programmer error otherwise: the process aborts).
  T& Add(const Labels& labels);

  const std::string& name() const { return name_; }
  void Collect(std::string* out) const override;

 private:
  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  const std::vector<double> buckets_;
  mutable absl::Mutex mu_;
  std::map<Labels, std::unique_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
};

class Registry {
 public:
  // INVALID_ARGUMENT: bad metric or label name, bad buckets.
  // ALREADY_EXISTS: the name is registered.
  absl::StatusOr<Family<Counter>*> AddCounter(absl::string_view name, absl::string_view help,
                                              std::vector<std::string> label_names = {});
  absl::StatusOr<Family<Gauge>*> AddGauge(absl::string_view name, absl::string_view help,
                                          std::vector<std::string> label_names = {});
  absl::StatusOr<Family<Histogram>*> AddHistogram(absl::string_view name, absl::string_view help,
                                                  std::vector<double> buckets,
                                                  std::vector<std::string> label_names = {});
  // Registers a custom collector (e.g. process metrics) that owns its names.
  void AddCollector(std::unique_ptr<Collector> collector);

  // The text exposition of every family, in registration order.
  std::string Render() const;

 private:
  absl::Status Reserve(absl::string_view name, const std::vector<std::string>& label_names,
                       bool histogram);
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Collector>> collectors_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> names_ ABSL_GUARDED_BY(mu_);
};

// Exponentially growing buckets: start, start*factor, ... (count of them).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// Exposition helpers for custom collectors.
void WriteHeader(absl::string_view name, absl::string_view help, MetricType type, std::string* out);
void WriteSample(absl::string_view name, const Labels& labels, double value, std::string* out);
std::string FormatValue(double value);

}  // namespace bpo::metrics

#endif  // BPO_COMMON_METRICS_H_
