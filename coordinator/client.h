// The workers' side of the coordinator protocol: one channel, every call with
// a deadline, calls retried while the coordinator is unreachable (a restart)
// for up to `retry_for`, and a heartbeat thread that keeps the worker listed
// and extends the leases it holds while the worker makes progress.
#ifndef BPO_COORDINATOR_CLIENT_H_
#define BPO_COORDINATOR_CLIENT_H_

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "bpo/v1/annotation.grpc.pb.h"
#include "bpo/v1/coordinator.grpc.pb.h"
#include "common/transport.h"

namespace bpo::coordinator {

struct ClientOptions {
  // host:port, or "file:PATH": the coordinator's address file, read at
  // Connect and again whenever the coordinator is unreachable (a restarted
  // coordinator listens on a new port).
  std::string address;
  absl::Duration rpc_deadline = absl::Seconds(30);
  // How long to wait for the coordinator at start-up and, later, to come back
  // when it is unreachable (UNAVAILABLE) before a call fails.
  absl::Duration retry_for = absl::Minutes(2);
  // How this process connects (LoadTransport); plaintext only on loopback.
  TransportSecurity transport;
};

class CoordinatorClient {
 public:
  // Waits up to retry_for for the coordinator to accept a connection.
  static absl::StatusOr<std::unique_ptr<CoordinatorClient>> Connect(ClientOptions options);
  ~CoordinatorClient();

  // Registers (again: same name, same id) and keeps the answer.
  absl::StatusOr<bpo::v1::RegisterResponse> Register(const bpo::v1::WorkerInfo& info);
  const std::string& worker_id() const { return worker_id_; }

  absl::StatusOr<bpo::v1::RunStatus> Status();
  absl::StatusOr<bpo::v1::LeasePromptsResponse> LeasePrompts(int max_prompts);
  absl::StatusOr<bpo::v1::SubmitPairsResponse> SubmitPairs(bpo::v1::SubmitPairsRequest request);
  absl::StatusOr<bpo::v1::LeasePairsResponse> LeasePairs(int max_pairs, absl::Duration duration);
  absl::StatusOr<bpo::v1::SubmitLabelsResponse> SubmitLabels(bpo::v1::SubmitLabelsRequest request);
  absl::StatusOr<bpo::v1::FetchBatchResponse> FetchBatch(int64_t step, int rank, int world_size);
  absl::StatusOr<bpo::v1::CommitStepResponse> CommitStep(bpo::v1::CommitStepRequest request);
  absl::Status ReportSnapshot(bpo::v1::ReportSnapshotRequest request);

  // Heartbeats every `interval` on a thread until destruction, extending the
  // leases added here. The last answer's run state is kept. Leases follow
  // progress: when MarkProgress() has not been called for `stall_timeout`
  // (zero: never), heartbeats stop extending the leases (they expire and
  // their work goes back to the queue) and `on_stall` is called, once per
  // stall, on the heartbeat thread.
  void StartHeartbeats(absl::Duration interval, absl::Duration stall_timeout = absl::ZeroDuration(),
                       std::function<void(absl::Duration since_progress)> on_stall = nullptr);
  // The work loop finished a unit of work (or saw that there is none).
  void MarkProgress();
  void HoldLease(const std::string& lease_id);
  void ReleaseLease(const std::string& lease_id);
  bpo::v1::RunState last_state() const;
  // Whether the run is done, for a worker that found no work: the state the
  // heartbeats last reported, else GetRunStatus, called at most once per
  // `max_age` (it reads the whole store; hundreds of idle workers polling it
  // every retry_after would keep the store busy; docs/performance.md).
  absl::StatusOr<bool> RunDone(absl::Duration max_age = absl::Seconds(1));

  // The endpoint as configured (host:port or file:PATH).
  const std::string& address() const { return options_.address; }
  // The host:port the channel dials now.
  std::string resolved_address() const;

 private:
  // One channel and its stubs; replaced whole when the address file names a
  // new address.
  struct Stubs {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<bpo::v1::Coordinator::Stub> coordinator;
    std::unique_ptr<bpo::v1::PromptQueue::Stub> prompts;
    std::unique_ptr<bpo::v1::AnnotationQueue::Stub> annotation;
    std::unique_ptr<bpo::v1::LearnerFeed::Stub> learner;
  };

  explicit CoordinatorClient(ClientOptions options);
  // A channel to the address the endpoint names now, ready within `timeout`.
  absl::StatusOr<std::shared_ptr<const Stubs>> Dial(absl::Duration timeout) const;
  std::shared_ptr<const Stubs> stubs() const;
  // With a file endpoint: reads the address file again and switches to the
  // address it names if that changed.
  void Refresh();
  // Runs `call` (a stub call on a prepared context) with retries.
  absl::Status Call(const char* method,
                    const std::function<grpc::Status(const Stubs&, grpc::ClientContext*)>& call);

  const ClientOptions options_;
  std::string worker_id_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const Stubs> stubs_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> leases_ ABSL_GUARDED_BY(mu_);
  bpo::v1::RunState state_ ABSL_GUARDED_BY(mu_) = bpo::v1::RUN_STATE_RUNNING;
  absl::Time last_progress_ ABSL_GUARDED_BY(mu_) = absl::Now();
  bool stalled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time status_checked_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration stall_timeout_;  // set before the heartbeat thread starts
  std::function<void(absl::Duration)> on_stall_;
  absl::Notification stop_;
  std::thread heartbeat_;
};

// Sleeps for a response's retry_after (at least 50 ms, at most 5 s).
void SleepRetryAfter(const google::protobuf::Duration& retry_after);

}  // namespace bpo::coordinator

#endif  // BPO_COORDINATOR_CLIENT_H_
