#include "launch/progress.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace bpo::launch {

std::string ProgressBar(int64_t done, int64_t total, int width) {
  const int filled = total > 0 ? static_cast<int>(width * done / total) : 0;
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "]");
}

std::string FormatProgressLine(const bpo::v1::RunStatus& s, int64_t first_step,
                               double elapsed_seconds, int64_t first_pairs_consumed) {
  const int64_t done_steps = s.step() - first_step;
  const double eta =
      done_steps > 0 ? elapsed_seconds / done_steps * (s.total_steps() - s.step()) : -1;
  auto loss = s.last_step_metrics().find("loss");
  return absl::StrFormat(
      "phase %d/%d step %d/%d %s | pairs %d queued %d sampled %d annotated %d consumed /%d | "
      "loss %s | %.1f pairs/s | ETA %s",
      s.phase() + 1, s.phases(), s.step(), s.total_steps(),
      ProgressBar(s.step(), s.total_steps(), 20), s.pairs_queued() + s.pairs_leased(),
      s.pairs_sampled(), s.pairs_annotated() + s.pairs_batched(), s.pairs_consumed(),
      s.pairs_total(),
      loss == s.last_step_metrics().end() ? "-" : absl::StrFormat("%.4f", loss->second),
      elapsed_seconds > 0 ? (s.pairs_consumed() - first_pairs_consumed) / elapsed_seconds : 0.0,
      eta < 0 ? "-" : absl::StrFormat("%.0fs", eta));
}

ProgressReporter::ProgressReporter(coordinator::CoordinatorClient* client, std::ostream* out,
                                   bool tty, absl::Duration every)
    : client_(client),
      out_(out),
      tty_(tty),
      every_(every > absl::ZeroDuration() ? every
             : tty                        ? absl::Seconds(1)
                                          : absl::Seconds(5)),
      t0_(absl::Now()) {}

void ProgressReporter::MaybeReport() {
  if (absl::Now() - last_report_ < every_) return;
  auto s = client_->Status();
  if (s.ok()) {
    last_ = *s;
    if (first_step_ < 0) {
      first_step_ = last_.step();
      first_pairs_consumed_ = last_.pairs_consumed();
    }
    const std::string line = FormatProgressLine(
        last_, first_step_, absl::ToDoubleSeconds(absl::Now() - t0_), first_pairs_consumed_);
    *out_ << (tty_ ? "\r" : "") << line << (tty_ ? "\033[K" : "\n") << std::flush;
  }
  last_report_ = absl::Now();
}

const bpo::v1::RunStatus& ProgressReporter::Refresh() {
  auto s = client_->Status();
  if (s.ok()) last_ = *s;
  return last_;
}

}  // namespace bpo::launch
