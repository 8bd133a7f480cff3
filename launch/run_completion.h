// Whether a run is finished, from what it left in its run directory: every
// step committed in the coordinator's store and the final adapter exported
// (adapter_model.safetensors is the last file the learner writes). What
// `bpo local` and the Slurm batch script (`bpo deploy status`) decide a run's
// end by.
//
// Reads the SQLite store (WAL): call it on the coordinator's machine or when
// no coordinator runs, as WAL's shared memory does not span machines.
#ifndef BPO_LAUNCH_RUN_COMPLETION_H_
#define BPO_LAUNCH_RUN_COMPLETION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "bpo/v1/config.pb.h"

namespace bpo::launch {

struct RunCompletion {
  int64_t steps_committed = 0;  // 0 when the store does not exist yet
  int64_t total_steps = 0;      // T of the config
  bool adapter_exported = false;
  bool finished() const { return steps_committed >= total_steps && adapter_exported; }
};

// The store named by coordinator.store (default <run dir>/coordinator.db) and
// <run dir>/adapter/adapter_model.safetensors. An error only when the store
// exists and cannot be read.
absl::StatusOr<RunCompletion> ReadRunCompletion(const bpo::v1::RunConfig& config);

}  // namespace bpo::launch

#endif  // BPO_LAUNCH_RUN_COMPLETION_H_
