// The one-line progress of a run as `bpo local` shows it, from the
// coordinator's RunStatus: rewritten in place on a terminal (every second),
// one line per report otherwise (every 5 s).
#ifndef BPO_LAUNCH_PROGRESS_H_
#define BPO_LAUNCH_PROGRESS_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "bpo/v1/coordinator.pb.h"
#include "coordinator/client.h"

namespace bpo::launch {

// "[#####...............]": `done` of `total` as `width` characters.
std::string ProgressBar(int64_t done, int64_t total, int width);

// "phase 1/4 step 3/8 [...] | pairs ... | loss 0.6931 | 2.0 pairs/s | ETA 12s";
// the rate is of the pairs consumed since `first_pairs_consumed` over
// `elapsed_seconds`, the ETA from the steps done since `first_step` (the step
// and pairs when the launcher first looked: a resumed run).
std::string FormatProgressLine(const bpo::v1::RunStatus& status, int64_t first_step,
                               double elapsed_seconds, int64_t first_pairs_consumed = 0);

// Asks the coordinator for the run's status at most once per interval
// (`every`; zero: the defaults above) and writes the progress line to `out`.
// Not thread-safe.
class ProgressReporter {
 public:
  ProgressReporter(coordinator::CoordinatorClient* client, std::ostream* out, bool tty,
                   absl::Duration every = absl::ZeroDuration());

  // Reports when the interval has passed since the last report.
  void MaybeReport();
  // The status once more for the final summary: the last one seen when the
  // coordinator does not answer.
  const bpo::v1::RunStatus& Refresh();
  absl::Time started() const { return t0_; }

 private:
  coordinator::CoordinatorClient* client_;
  std::ostream* out_;
  bool tty_;
  absl::Duration every_;
  absl::Time t0_;
  absl::Time last_report_ = absl::InfinitePast();
  int64_t first_step_ = -1;
  int64_t first_pairs_consumed_ = 0;
  bpo::v1::RunStatus last_;
};

}  // namespace bpo::launch

#endif  // BPO_LAUNCH_PROGRESS_H_
