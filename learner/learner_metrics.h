// Per-step learner metrics: Prometheus families registered once (handles
// kept) and a JSONL log, one object per step, flushed as it is written.
#ifndef BPO_LEARNER_LEARNER_METRICS_H_
#define BPO_LEARNER_LEARNER_METRICS_H_

#include <fstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "learner/trainer.h"

namespace bpo::learner {

class LearnerMetrics {
 public:
  // Registers the learner's families on `registry` (which must outlive this).
  static absl::StatusOr<LearnerMetrics> Create(metrics::Registry* registry, int members);
  void Record(const StepMetrics& m);
  // Online mode: time spent getting a batch, and snapshot publishing.
  void RecordWait(double seconds);
  void RecordPublish(double seconds, uint64_t bytes);

 private:
  metrics::Gauge* step_ = nullptr;
  metrics::Gauge* lr_ = nullptr;
  metrics::Gauge* loss_ = nullptr;
  std::vector<metrics::Gauge*> member_loss_;
  std::vector<metrics::Gauge*> member_grad_norm_;
  metrics::Gauge* margin_ = nullptr;
  metrics::Gauge* accuracy_ = nullptr;
  metrics::Gauge* chosen_ = nullptr;
  metrics::Gauge* rejected_ = nullptr;
  metrics::Gauge* kl_reference_ = nullptr;
  metrics::Gauge* kl_sft_ = nullptr;
  metrics::Gauge* pairs_per_second_ = nullptr;
  metrics::Counter* pairs_ = nullptr;
  metrics::Histogram* step_seconds_ = nullptr;
  metrics::Counter* step_seconds_total_ = nullptr;
  metrics::Counter* wait_seconds_total_ = nullptr;
  metrics::Counter* publish_seconds_ = nullptr;
  metrics::Counter* publish_bytes_ = nullptr;
};

// Appends one JSON object per step to a file.
class StepLog {
 public:
  static absl::StatusOr<StepLog> Open(const std::string& path);
  absl::Status Append(const StepMetrics& m);

 private:
  std::string path_;
  std::shared_ptr<std::ofstream> out_;
};

}  // namespace bpo::learner

#endif  // BPO_LEARNER_LEARNER_METRICS_H_
