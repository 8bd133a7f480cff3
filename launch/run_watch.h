// Watching a run that a cluster launcher started (`bpo deploy watch`, which
// the Slurm batch script runs next to the coordinator): keeps
// <run dir>/prometheus-targets.json equal to the /metrics addresses the
// processes publish in <run dir>/addresses/ (launch/metrics_targets.h), says
// where each process and the rating page serve as they appear, prints the
// progress line, and ends when the run is finished.
#ifndef BPO_LAUNCH_RUN_WATCH_H_
#define BPO_LAUNCH_RUN_WATCH_H_

#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bpo/v1/config.pb.h"
#include "launch/metrics_targets.h"

namespace bpo::launch {

// The processes of a run as the launchers name them: coordinator,
// learner-<rank>, actor-<i>, then annotator-<i> or, with annotation.kind
// human, the human-annotation service "human".
std::vector<std::string> RunProcessNames(const bpo::v1::RunConfig& config);

struct WatchOptions {
  // The run's effective config: endpoints.coordinator is reached through it
  // (an address file), the run directory holds the address files.
  bpo::v1::RunConfig config;
  Labels target_labels;  // added to every target (slurm_job_id)
  absl::Duration report_every = absl::Seconds(30);
  std::function<bool()> stop_requested;  // polled about once a second
  std::ostream* out = &std::cout;
};

// Returns 0 once the run is finished (the coordinator reports every step
// committed and <run dir>/adapter/adapter_model.safetensors exists), 130 when
// stop_requested. FAILED_PRECONDITION when the observer certificate
// "launcher" cannot be loaded (unless security.plaintext).
absl::StatusOr<int> WatchRun(const WatchOptions& options);

}  // namespace bpo::launch

#endif  // BPO_LAUNCH_RUN_WATCH_H_
