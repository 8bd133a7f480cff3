// The learner process's loop (`bpo learner`): loads the policy and the LoRA
// ensemble the run config names, meets the other data-parallel ranks,
// resumes from the newest complete checkpoint, then trains step after step on
// the batches of its BatchSource: online (the coordinator's LearnerFeed,
// publishing the behavior snapshots the coordinator asks for and committing
// every step) or offline (a preference file; optionally a snapshot every N
// steps). Checkpoints every learner.checkpoint_every steps and at the end;
// rank 0 writes the merged adapter and the members in PEFT format once all T
// steps are done.
//
// Not thread-safe: one thread calls Run().
#ifndef BPO_LEARNER_LEARNER_H_
#define BPO_LEARNER_LEARNER_H_

#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bpo/v1/config.pb.h"
#include "collective/collective.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "common/transport.h"
#include "coordinator/client.h"
#include "learner/batch_source.h"
#include "learner/checkpoint.h"
#include "learner/learner_metrics.h"
#include "learner/trainer.h"
#include "model/lora.h"
#include "model/policy.h"
#include "snapshot/snapshot.h"
#include "snapshot/snapshot_service.h"

namespace bpo::learner {

struct LearnerOptions {
  // The effective run config (online: the coordinator's, with this machine's
  // endpoints). model.policy must name a model directory.
  bpo::v1::RunConfig config;
  int rank = 0;  // among learner.world_size ranks
  // Offline: a JSONL preference file (OpenPairsFile). Empty: online, through
  // the coordinator client given to Create.
  std::string pairs_path;
  bool resume = true;          // from the newest complete checkpoint
  int64_t max_steps = 0;       // steps in this invocation; 0: run to T
  int64_t snapshot_every = 0;  // offline: publish every N steps (0: never)
  // Where ranks meet: file:DIR or tcp:HOST:PORT; empty: file:<run dir>/rendezvous.
  std::string rendezvous;
  int64_t max_prompt_tokens = 64;
  // How rank 0 serves snapshots (a learner certificate, or plaintext).
  TransportSecurity transport;
  // Offline: serve published snapshots over gRPC too (they always go to the
  // store and, when learner.snapshot_dir is set, to that directory).
  bool serve_snapshots = true;
  // Polled before each batch fetch (online); true ends Run with CANCELLED.
  std::function<bool()> stop = [] { return false; };
  // Progress lines (steps, snapshots, the time account); never null.
  std::ostream* out = &std::cout;
};

// The trainer's options from the run config's loss, reference, LoRA merge,
// optimizer and schedule sections.
TrainerOptions TrainerOptionsFromConfig(const bpo::v1::RunConfig& config);

class Learner {
 public:
  // Online when options.pairs_path is empty: `client` (registered as this
  // rank's learner worker) must be non-null and outlive the learner. Metrics
  // go to `registry`, which must outlive the learner. Errors name what was
  // wrong: a missing model, a short pairs file, a rank outside the world, a
  // checkpoint of another run or model.
  static absl::StatusOr<std::unique_ptr<Learner>> Create(LearnerOptions options,
                                                         coordinator::CoordinatorClient* client,
                                                         metrics::Registry* registry);
  ~Learner();

  // Trains until step T (or max_steps in this invocation, or the
  // coordinator says the run is done), then exports the adapter (rank 0).
  absl::Status Run();

  int64_t steps_done() const { return trainer_->steps_done(); }
  // "host:port" of the snapshot service (rank 0 when it publishes), else "".
  const std::string& snapshot_address() const { return serve_address_; }
  const std::string& run_dir() const { return run_dir_; }

 private:
  explicit Learner(LearnerOptions options) : options_(std::move(options)) {}
  absl::Status LoadModel();
  absl::Status OpenSource(coordinator::CoordinatorClient* client);
  absl::Status JoinRanks();
  absl::Status CreateTrainer();
  absl::Status Resume();
  absl::Status StartSnapshots();
  absl::StatusOr<bpo::v1::SnapshotInfo> Publish(uint64_t version);
  absl::Status PublishAndReport(uint64_t version);
  // One step of the loop: false when the source said the run is done.
  absl::StatusOr<bool> Iterate();
  absl::Status AfterStep(int64_t step, const StepMetrics& metrics);
  absl::Status MaybeCheckpoint();
  absl::Status Export();
  void PrintTimeAccount(double wall_seconds) const;

  LearnerOptions options_;
  int world_ = 1;
  int64_t total_steps_ = 0;
  int64_t steps_per_phase_ = 1;  // K
  std::string run_dir_;
  std::string checkpoint_dir_;
  TrainerOptions trainer_options_;
  std::optional<model::Policy> policy_;
  std::unique_ptr<model::LoraEnsemble> lora_;
  std::unique_ptr<BatchSource> source_;
  std::unique_ptr<collective::Collective> collective_;
  std::unique_ptr<EnsembleTrainer> trainer_;
  CheckpointMeta meta_;
  std::optional<LearnerMetrics> metrics_;
  std::optional<StepLog> step_log_;
  std::unique_ptr<snapshot::SnapshotStore> snapshots_;
  std::unique_ptr<snapshot::SnapshotServiceImpl> snapshot_service_;
  GrpcServer snapshot_server_;
  std::string serve_address_;
  int64_t taken_ = 0;  // steps trained in this invocation
  double time_train_ = 0, time_wait_ = 0, time_publish_ = 0;
};

}  // namespace bpo::learner

#endif  // BPO_LEARNER_LEARNER_H_
