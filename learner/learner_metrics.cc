#include "learner/learner_metrics.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace bpo::learner {

absl::StatusOr<LearnerMetrics> LearnerMetrics::Create(metrics::Registry* r, int members) {
  LearnerMetrics m;
  auto gauge = [&](const char* name, const char* help, metrics::Gauge** out) -> absl::Status {
    auto f = r->AddGauge(name, help);
    if (!f.ok()) return f.status();
    *out = &(*f)->Add({});
    return absl::OkStatus();
  };
  for (auto s :
       {gauge("bpo_learner_step", "Learner steps taken.", &m.step_),
        gauge("bpo_learner_learning_rate", "Learning rate of the last step.", &m.lr_),
        gauge("bpo_learner_loss", "DAP loss of the last step, mean over members.", &m.loss_),
        gauge("bpo_learner_margin", "Mean beta*h of the last step.", &m.margin_),
        gauge("bpo_learner_reward_accuracy",
              "Fraction of pairs with h > 0 (implicit reward accuracy).", &m.accuracy_),
        gauge("bpo_learner_kl_reference", "Estimated KL from the reference (behavior) policy.",
              &m.kl_reference_),
        gauge("bpo_learner_kl_sft", "Estimated KL from the SFT policy.", &m.kl_sft_),
        gauge("bpo_learner_pairs_per_second", "Pairs per second of the last step.",
              &m.pairs_per_second_)}) {
    if (!s.ok()) return s;
  }
  auto logps =
      r->AddGauge("bpo_learner_logps", "Mean policy log-prob of the responses.", {"response"});
  if (!logps.ok()) return logps.status();
  m.chosen_ = &(*logps)->Add({{"response", "chosen"}});
  m.rejected_ = &(*logps)->Add({{"response", "rejected"}});
  auto member_loss =
      r->AddGauge("bpo_learner_member_loss", "Loss of each ensemble member.", {"member"});
  if (!member_loss.ok()) return member_loss.status();
  auto grad = r->AddGauge("bpo_learner_member_grad_norm",
                          "Gradient norm of each member before clipping.", {"member"});
  if (!grad.ok()) return grad.status();
  for (int i = 0; i < members; ++i) {
    m.member_loss_.push_back(&(*member_loss)->Add({{"member", absl::StrCat(i)}}));
    m.member_grad_norm_.push_back(&(*grad)->Add({{"member", absl::StrCat(i)}}));
  }
  auto pairs = r->AddCounter("bpo_learner_pairs_total", "Preference pairs trained on.");
  if (!pairs.ok()) return pairs.status();
  m.pairs_ = &(*pairs)->Add({});
  auto seconds = r->AddHistogram("bpo_learner_step_seconds", "Wall time of a learner step.",
                                 metrics::ExponentialBuckets(0.01, 2, 14));
  if (!seconds.ok()) return seconds.status();
  m.step_seconds_ = &(*seconds)->Add({});
  auto counter = [&](const char* name, const char* help, metrics::Counter** out) -> absl::Status {
    auto f = r->AddCounter(name, help);
    if (!f.ok()) return f.status();
    *out = &(*f)->Add({});
    return absl::OkStatus();
  };
  for (auto s : {counter("bpo_learner_step_seconds_total", "Seconds spent in training steps.",
                         &m.step_seconds_total_),
                 counter("bpo_learner_wait_seconds_total",
                         "Seconds spent fetching batches from the coordinator, waiting included.",
                         &m.wait_seconds_total_),
                 counter("bpo_learner_snapshot_publish_seconds_total",
                         "Seconds spent encoding and publishing snapshots.", &m.publish_seconds_),
                 counter("bpo_learner_snapshot_publish_bytes_total",
                         "Bytes of the snapshots published.", &m.publish_bytes_)}) {
    if (!s.ok()) return s;
  }
  return m;
}

void LearnerMetrics::RecordWait(double seconds) { wait_seconds_total_->Increment(seconds); }

void LearnerMetrics::RecordPublish(double seconds, uint64_t bytes) {
  publish_seconds_->Increment(seconds);
  publish_bytes_->Increment(static_cast<double>(bytes));
}

void LearnerMetrics::Record(const StepMetrics& s) {
  step_->Set(static_cast<double>(s.step + 1));
  lr_->Set(s.learning_rate);
  loss_->Set(s.loss);
  margin_->Set(s.margin);
  accuracy_->Set(s.accuracy);
  chosen_->Set(s.chosen_logps);
  rejected_->Set(s.rejected_logps);
  kl_reference_->Set(s.kl_reference);
  kl_sft_->Set(s.kl_sft);
  pairs_per_second_->Set(s.pairs_per_second);
  for (size_t i = 0; i < s.member_loss.size() && i < member_loss_.size(); ++i) {
    member_loss_[i]->Set(s.member_loss[i]);
    member_grad_norm_[i]->Set(s.member_grad_norm[i]);
  }
  pairs_->Increment(static_cast<double>(s.pairs));
  step_seconds_->Observe(s.seconds);
  step_seconds_total_->Increment(s.seconds);
}

absl::StatusOr<StepLog> StepLog::Open(const std::string& path) {
  StepLog log;
  log.path_ = path;
  log.out_ = std::make_shared<std::ofstream>(path, std::ios::app);
  if (!*log.out_)
    return absl::PermissionDeniedError(absl::StrCat(path, ": cannot open for append"));
  return log;
}

absl::Status StepLog::Append(const StepMetrics& m) {
  nlohmann::json j = {{"step", m.step + 1},
                      {"lr", m.learning_rate},
                      {"loss", m.loss},
                      {"member_loss", m.member_loss},
                      {"member_grad_norm", m.member_grad_norm},
                      {"margin", m.margin},
                      {"reward_accuracy", m.accuracy},
                      {"chosen_logps", m.chosen_logps},
                      {"rejected_logps", m.rejected_logps},
                      {"kl_reference", m.kl_reference},
                      {"kl_sft", m.kl_sft},
                      {"seconds", m.seconds},
                      {"pairs", m.pairs},
                      {"pairs_per_second", m.pairs_per_second}};
  *out_ << j.dump() << "\n";
  out_->flush();
  if (!*out_) return absl::DataLossError(absl::StrCat(path_, ": write failed"));
  return absl::OkStatus();
}

}  // namespace bpo::learner
