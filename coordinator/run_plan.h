// Algorithm 1's schedule for one run, derived from the config: T steps in F
// phases of K = T/F steps; phase p starts at step p*K with behavior snapshot
// version p and collects M annotated pairs, consumed B per step.
#ifndef BPO_COORDINATOR_RUN_PLAN_H_
#define BPO_COORDINATOR_RUN_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/config.pb.h"

namespace bpo::coordinator {

struct Phase {
  int32_t index = 0;              // p, 0-based
  int64_t first_step = 0;         // p*K
  int64_t end_step = 0;           // (p+1)*K, exclusive
  uint64_t snapshot_version = 0;  // behavior policy of this phase (= p)
  int64_t pairs = 0;              // M
};

struct RunPlan {
  int64_t total_steps = 0;      // T
  int32_t phases = 0;           // F
  int64_t steps_per_phase = 0;  // K
  int32_t batch_size = 0;       // B
  int64_t pairs_per_phase = 0;  // M
  int64_t total_pairs = 0;      // F*M annotated pairs in the run
  int64_t pairs_used = 0;       // T*B of them reach the learner

  // The phase of learner step t (0 <= t < T).
  int32_t PhaseOfStep(int64_t step) const { return static_cast<int32_t>(step / steps_per_phase); }
  // True at t = p*K, where the learner publishes snapshot p before training.
  bool IsPublishStep(int64_t step) const { return step % steps_per_phase == 0; }
  Phase GetPhase(int32_t p) const;
};

// INVALID_ARGUMENT when the schedule is inconsistent (configs loaded through
// LoadRunConfig never are).
absl::StatusOr<RunPlan> MakeRunPlan(const bpo::v1::RunConfig& config);

// A readable summary: the numbers and the first and last phases.
std::string FormatRunPlan(const RunPlan& plan, int max_phases_shown = 6);

}  // namespace bpo::coordinator

#endif  // BPO_COORDINATOR_RUN_PLAN_H_
