// An in-process coordinator for the workers' tests: a RunStore on a SQLite
// file behind the real gRPC services (wired as `bpo coordinator` wires them),
// with the roles a test does not run for real (the learner, an actor, an
// annotator) played through the store.
#ifndef BPO_COORDINATOR_TESTING_IN_PROCESS_COORDINATOR_H_
#define BPO_COORDINATOR_TESTING_IN_PROCESS_COORDINATOR_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bpo/v1/config.pb.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "coordinator/run_store.h"
#include "coordinator/service.h"

namespace bpo::coordinator::testing {

// DefaultRunConfig() with a small strict schedule: T = 4 steps in F = 2
// phases, B = 2, M = 4 pairs per phase; one rater per pair.
bpo::v1::RunConfig SmallRunConfig();

class InProcessCoordinator {
 public:
  // Opens the store at dir/store.db (dir is created) with 20 prompts
  // "prompt number <i>" and serves it on 127.0.0.1 (a free port), in
  // plaintext unless a TLS `transport` (a coordinator certificate) is given.
  static absl::StatusOr<std::unique_ptr<InProcessCoordinator>> Start(
      const std::string& dir, bpo::v1::RunConfig config,
      TransportSecurity transport = TransportSecurity::Plaintext());
  ~InProcessCoordinator();

  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port); }
  coordinator::RunStore* store() { return store_.get(); }

  // Publishes snapshot `version` (the learner) and samples every pair of its
  // phase (the actor). Response a of pair P reads "A-side answer of P", b
  // "B-side answer of P": tests map a shown text back to its side.
  absl::Status SamplePhase(uint64_t version);
  // Plays the actor alone: samples every prompt the store hands out now (the
  // phases opened by the snapshots reported so far), texts as above.
  absl::Status SampleOpenPrompts();
  // Plays an annotator: labels every sampled pair, preferring response a.
  // Returns how many pairs it labelled.
  absl::StatusOr<int> AnnotateAll();
  // The learner's batch of `step`, then commits it.
  absl::StatusOr<bpo::v1::FetchBatchResponse> FetchAndCommit(int64_t step);

  static std::string TextA(const std::string& pair_id) { return "A-side answer of " + pair_id; }
  static std::string TextB(const std::string& pair_id) { return "B-side answer of " + pair_id; }

 private:
  InProcessCoordinator() = default;

  metrics::Registry registry_;
  std::unique_ptr<coordinator::RunStore> store_;
  std::unique_ptr<coordinator::RpcMetrics> rpc_metrics_;
  std::unique_ptr<coordinator::CoordinatorServices> services_;
  GrpcServer server_;
  std::string learner_;
  std::string actor_;
  std::string annotator_;
};

}  // namespace bpo::coordinator::testing

#endif  // BPO_COORDINATOR_TESTING_IN_PROCESS_COORDINATOR_H_
