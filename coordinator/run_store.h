// The run's durable state and Algorithm 1's schedule, in one SQLite store
// (WAL). Every coordinator RPC is one method here and one transaction: a state
// change is committed before the caller is answered, so a coordinator killed
// at any point restarts from the store with no annotated pair lost and none
// used twice.
//
// A pair is one unit of work with its own id, created when its phase opens:
//
//   queued --LeasePrompts--> prompt_leased --SubmitPairs--> sampled
//     ^  (lease expired / returned)  |  (identical: dropped, replaced)
//     +------------------------------+
//   sampled --LeasePairs/SubmitLabels (raters_per_pair labels)--> annotated
//     (a tie with ties: skip, or an unanimous skip, is dropped and replaced)
//   annotated --FetchBatch--> batched(step t) --CommitStep(t)--> consumed
//
// Phase p (M pairs, prompts drawn without replacement from a seeded
// permutation of the prompt set; a replacement draws the next prompt) opens
// when snapshot p is reported (strict), or once the newest snapshot v has
// p <= v + max_staleness (async; pairs are tagged with the snapshot current
// when they are leased). The batch of step t takes B annotated pairs of phase
// t/K in creation order; strict mode waits until every pair of the phase is
// annotated.
//
// Thread-safe: one mutex serialises the methods (SQLite has one writer).
#ifndef BPO_COORDINATOR_RUN_STORE_H_
#define BPO_COORDINATOR_RUN_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bpo/v1/annotation.pb.h"
#include "bpo/v1/config.pb.h"
#include "bpo/v1/coordinator.pb.h"
#include "coordinator/sqlite.h"

namespace bpo::coordinator {

enum class PairState : int {
  kQueued = 0,
  kPromptLeased = 1,
  kSampled = 2,
  kAnnotated = 3,
  kBatched = 4,
  kConsumed = 5,
  kDropped = 6,
};
const char* PairStateName(PairState state);

struct RunStoreOptions {
  std::string path;  // the SQLite file
  bool fsync = true;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// Totals for metrics and status.
struct StoreCounters {
  std::map<PairState, int64_t> pairs;  // by state
  int64_t prompt_leases_active = 0;    // pairs
  int64_t label_leases_active = 0;     // (pair, rater)
  int64_t leases_granted = 0;
  int64_t leases_expired = 0;
  int64_t duplicates = 0;
  int64_t rejected = 0;
  int64_t steps_committed = 0;
  int64_t max_staleness = 0;
  // Registered workers seen within coordinator.worker_timeout_seconds, by
  // kind ("actor", "annotator", "learner").
  std::map<std::string, int64_t> workers_active;
};

class RunStore {
 public:
  using PromptLoader = std::function<absl::StatusOr<std::vector<bpo::v1::Prompt>>()>;
  // Creates the store for `config` with the alignment prompts `load_prompts`
  // returns, or reopens an existing one. Reopening checks that it holds the
  // same run: another run_id or a different config is FAILED_PRECONDITION
  // naming the store and the differing fields; the prompts then come from the
  // store and `load_prompts` is not called.
  static absl::StatusOr<std::unique_ptr<RunStore>> Open(const bpo::v1::RunConfig& config,
                                                        const PromptLoader& load_prompts,
                                                        RunStoreOptions options);
  static absl::StatusOr<std::unique_ptr<RunStore>> Open(const bpo::v1::RunConfig& config,
                                                        const std::vector<bpo::v1::Prompt>& prompts,
                                                        RunStoreOptions options) {
    return Open(config, PromptLoader([&] { return prompts; }), std::move(options));
  }

  // Coordinator.
  absl::StatusOr<bpo::v1::RegisterResponse> Register(const bpo::v1::RegisterRequest& request);
  absl::StatusOr<bpo::v1::HeartbeatResponse> Heartbeat(const bpo::v1::HeartbeatRequest& request);
  // Checks a pair once more when it is put into a batch: a non-empty answer
  // is why the learner could not train on it, and the pair is quarantined
  // (dropped with note "quarantined: <why>") and replaced by a new prompt of
  // its phase, so that no batch the store forms can stop the learner. Set
  // before serving (the coordinator's services set CheckPairBounds).
  void SetPairCheck(std::function<std::string(const bpo::v1::SampledPair&)> check) {
    absl::MutexLock lock(&mu_);
    pair_check_ = std::move(check);
  }
  // What `worker_id` registered with (its identity included); NOT_FOUND
  // when unknown.
  absl::StatusOr<bpo::v1::WorkerInfo> GetWorker(const std::string& worker_id);
  absl::StatusOr<bpo::v1::RunStatus> Status();
  // PromptQueue.
  absl::StatusOr<bpo::v1::LeasePromptsResponse> LeasePrompts(
      const bpo::v1::LeasePromptsRequest& request);
  absl::StatusOr<bpo::v1::SubmitPairsResponse> SubmitPairs(
      const bpo::v1::SubmitPairsRequest& request);
  absl::StatusOr<bpo::v1::ReturnPromptsResponse> ReturnPrompts(
      const bpo::v1::ReturnPromptsRequest& request);
  // AnnotationQueue.
  absl::StatusOr<bpo::v1::LeasePairsResponse> LeasePairs(const bpo::v1::LeasePairsRequest& request);
  absl::StatusOr<bpo::v1::ExtendLeaseResponse> ExtendLease(
      const bpo::v1::ExtendLeaseRequest& request);
  absl::StatusOr<bpo::v1::SubmitLabelsResponse> SubmitLabels(
      const bpo::v1::SubmitLabelsRequest& request);
  // LearnerFeed.
  absl::StatusOr<bpo::v1::FetchBatchResponse> FetchBatch(const bpo::v1::FetchBatchRequest& request);
  absl::StatusOr<bpo::v1::CommitStepResponse> CommitStep(const bpo::v1::CommitStepRequest& request);
  absl::StatusOr<bpo::v1::ReportSnapshotResponse> ReportSnapshot(
      const bpo::v1::ReportSnapshotRequest& request);

  // Returns the work of every lease past its deadline to the queue; the
  // number of leases that expired. Lease calls do this first; the service
  // also runs it on a timer.
  absl::StatusOr<int64_t> ExpireLeases();

  absl::StatusOr<StoreCounters> Counters();
  // The pairs in `state`, ascending creation order (tests, tools).
  absl::StatusOr<std::vector<std::string>> PairIds(PairState state);
  const bpo::v1::RunConfig& config() const { return config_; }
  const std::string& run_id() const { return config_.run_id(); }

 private:
  RunStore(bpo::v1::RunConfig config, RunStoreOptions options);
  struct Worker {
    std::string id;
    bpo::v1::WorkerInfo info;
  };

  absl::Status Init(const PromptLoader& load_prompts) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::function<std::string(const bpo::v1::SampledPair&)> pair_check_ ABSL_GUARDED_BY(mu_);
  int64_t NowMicros() const;
  absl::StatusOr<Worker> FindWorker(const std::string& worker_id, bpo::v1::WorkerKind kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status TouchWorker(const std::string& worker_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> ExpireLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Meta counters (key -> integer).
  absl::StatusOr<int64_t> GetCounter(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SetCounter(const std::string& key, int64_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AddCounter(const std::string& key, int64_t delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Inserts one queued pair of `phase` with the next prompt of the permutation.
  // A new pair of `phase` in lease group `group` (-1: a new group, numbered
  // by the pair's seq); its seq.
  absl::StatusOr<int64_t> AddPair(int phase, int64_t group = -1) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `count` new pairs of `phase` in fixed lease groups of
  // sampling.prompts_per_lease: an actor samples a whole group, so that which
  // prompts share a padded batch (and a random state) never depends on
  // timing or on the number of actors.
  absl::Status AddGroups(int phase, int64_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Strict mode: once no pair of `phase` is waiting to be sampled or
  // labelled, replaces the dropped ones, in groups, in one deterministic
  // round (immediate replacement would number them in arrival order).
  absl::Status Replenish(int64_t phase) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status OpenPhasesUpTo(int64_t newest_snapshot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> NewestSnapshot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);  // -1: none
  absl::StatusOr<std::string> NewLeaseId(const std::string& worker_id, int kind,
                                         int64_t deadline_us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PERMISSION_DENIED when `lease_id` exists and is not a lease of `kind`
  // held by `worker_id`; OK when it is, or when it no longer exists.
  absl::Status CheckLeaseOwner(const std::string& lease_id, const std::string& worker_id, int kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the caller's prompt lease once none of its prompts is held.
  absl::Status ReleasePromptLease(const std::string& lease_id, const std::string& worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Resolves a pair whose labels are all in: annotated, or dropped and replaced.
  absl::Status Resolve(int64_t seq, const std::string& pair_id, int phase)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DropAndReplace(int64_t seq, int phase, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> StepsCommitted() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> BatchesFormed() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<bpo::v1::FetchBatchResponse> BatchSlice(int64_t step, int rank, int world)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t PromptIndex(int64_t cursor) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const bpo::v1::RunConfig config_;
  const RunStoreOptions options_;
  const int64_t steps_per_phase_;  // K
  const int64_t pairs_per_phase_;  // M
  mutable absl::Mutex mu_;
  std::unique_ptr<Database> db_ ABSL_GUARDED_BY(mu_);
  int64_t prompt_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Permutation of epoch `epoch_` of the prompt order.
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = -1;
  std::vector<int64_t> permutation_ ABSL_GUARDED_BY(mu_);
  // Volatile counters (since this process started).
  int64_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace bpo::coordinator

#endif  // BPO_COORDINATOR_RUN_STORE_H_
