// The actor process's loop: lease prompts, make sure the lease's behavior
// snapshot is loaded (fetched from the learner's snapshot service, verified
// against the coordinator's sha256, cached on disk), sample the pairs, submit
// them, repeat until the run is done or a stop is requested.
#ifndef BPO_ACTOR_ACTOR_H_
#define BPO_ACTOR_ACTOR_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "actor/sampler.h"
#include "common/metrics.h"
#include "coordinator/client.h"
#include "model/policy.h"
#include "snapshot/snapshot_service.h"

namespace bpo::actor {

struct ActorOptions {
  std::string run_id;
  int prompts_per_lease = 8;
  SamplerOptions sampler;
  std::string snapshot_cache_dir;
  absl::Duration rpc_deadline = absl::Seconds(30);
  // How the actor reaches the learner's snapshot service.
  TransportSecurity transport;
  // Larger snapshots are refused before anything is read or allocated.
  uint64_t snapshot_bytes_max = uint64_t{16} << 30;
  // Polled between leases; true ends the loop (leased prompts are returned).
  std::function<bool()> stop = [] { return false; };
};

class Actor {
 public:
  // `policy`, `client` and `registry` must outlive the actor.
  static absl::StatusOr<std::unique_ptr<Actor>> Create(const model::Policy* policy,
                                                       coordinator::CoordinatorClient* client,
                                                       ActorOptions options,
                                                       metrics::Registry* registry);
  // Until the run is done (OK) or stopped (OK), or an unrecoverable error.
  absl::Status Run();

 private:
  Actor() = default;
  absl::Status LoadSnapshot(const bpo::v1::LeasePromptsResponse& lease);

  const model::Policy* policy_ = nullptr;
  coordinator::CoordinatorClient* client_ = nullptr;
  ActorOptions options_;
  std::unique_ptr<snapshot::SnapshotClient> snapshots_;
  int64_t version_ = -1;
  std::unique_ptr<model::MergedLora> adapter_;
  metrics::Counter* pairs_ = nullptr;
  metrics::Counter* dropped_ = nullptr;
  metrics::Counter* tokens_ = nullptr;
  metrics::Counter* fetch_bytes_ = nullptr;
  metrics::Histogram* sample_seconds_ = nullptr;
  metrics::Histogram* fetch_seconds_ = nullptr;
  metrics::Gauge* version_gauge_ = nullptr;
};

}  // namespace bpo::actor

#endif  // BPO_ACTOR_ACTOR_H_
