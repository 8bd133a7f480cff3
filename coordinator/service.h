// The coordinator's gRPC services over one RunStore: Coordinator,
// PromptQueue, AnnotationQueue and LearnerFeed (proto/bpo/v1). Each call is
// one store transaction, answered after it commits. Before the store, every
// call is authorized (the caller's authenticated identity must have the
// method's role and own the worker_id it names; docs/security.md) and
// checked against the run's ValidationLimits (coordinator/validation.h); a
// refused call never reaches the store. Also exports the run's queue depths,
// leases and RPC latencies as Prometheus metrics.
#ifndef BPO_COORDINATOR_SERVICE_H_
#define BPO_COORDINATOR_SERVICE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/annotation.grpc.pb.h"
#include "bpo/v1/coordinator.grpc.pb.h"
#include "common/metrics.h"
#include "common/transport.h"
#include "coordinator/rate_limit.h"
#include "coordinator/run_store.h"
#include "coordinator/validation.h"

namespace bpo::coordinator {

// RPC metrics shared by the four services.
class RpcMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<RpcMetrics>> Create(metrics::Registry* registry);
  // Records one call of `method` that took `seconds` and ended with `status`.
  void Record(const std::string& method, double seconds, const absl::Status& status);

 private:
  metrics::Family<metrics::Histogram>* latency_ = nullptr;
  metrics::Family<metrics::Counter>* calls_ = nullptr;
};

// What the four services share; outlives them.
struct ServiceContext {
  RunStore* store;
  RpcMetrics* metrics;
  ValidationLimits limits;
  TransportSecurity transport;
  // Calls per identity (coordinator.rpcs_per_second_max, burst of 2 s).
  std::unique_ptr<RateLimiter> limiter;
};

class CoordinatorService final : public bpo::v1::Coordinator::CallbackService {
 public:
  explicit CoordinatorService(const ServiceContext* context) : c_(context) {}
  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const bpo::v1::RegisterRequest* request,
                                     bpo::v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const bpo::v1::HeartbeatRequest* request,
                                      bpo::v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* GetRunStatus(grpc::CallbackServerContext* context,
                                         const bpo::v1::GetRunStatusRequest* request,
                                         bpo::v1::RunStatus* response) override;

 private:
  const ServiceContext* c_;
};

class PromptQueueService final : public bpo::v1::PromptQueue::CallbackService {
 public:
  explicit PromptQueueService(const ServiceContext* context) : c_(context) {}
  grpc::ServerUnaryReactor* LeasePrompts(grpc::CallbackServerContext* context,
                                         const bpo::v1::LeasePromptsRequest* request,
                                         bpo::v1::LeasePromptsResponse* response) override;
  grpc::ServerUnaryReactor* SubmitPairs(grpc::CallbackServerContext* context,
                                        const bpo::v1::SubmitPairsRequest* request,
                                        bpo::v1::SubmitPairsResponse* response) override;
  grpc::ServerUnaryReactor* ReturnPrompts(grpc::CallbackServerContext* context,
                                          const bpo::v1::ReturnPromptsRequest* request,
                                          bpo::v1::ReturnPromptsResponse* response) override;

 private:
  const ServiceContext* c_;
};

class AnnotationQueueService final : public bpo::v1::AnnotationQueue::CallbackService {
 public:
  explicit AnnotationQueueService(const ServiceContext* context) : c_(context) {}
  grpc::ServerUnaryReactor* LeasePairs(grpc::CallbackServerContext* context,
                                       const bpo::v1::LeasePairsRequest* request,
                                       bpo::v1::LeasePairsResponse* response) override;
  grpc::ServerUnaryReactor* ExtendLease(grpc::CallbackServerContext* context,
                                        const bpo::v1::ExtendLeaseRequest* request,
                                        bpo::v1::ExtendLeaseResponse* response) override;
  grpc::ServerUnaryReactor* SubmitLabels(grpc::CallbackServerContext* context,
                                         const bpo::v1::SubmitLabelsRequest* request,
                                         bpo::v1::SubmitLabelsResponse* response) override;

 private:
  const ServiceContext* c_;
};

class LearnerFeedService final : public bpo::v1::LearnerFeed::CallbackService {
 public:
  explicit LearnerFeedService(const ServiceContext* context) : c_(context) {}
  grpc::ServerUnaryReactor* FetchBatch(grpc::CallbackServerContext* context,
                                       const bpo::v1::FetchBatchRequest* request,
                                       bpo::v1::FetchBatchResponse* response) override;
  grpc::ServerUnaryReactor* CommitStep(grpc::CallbackServerContext* context,
                                       const bpo::v1::CommitStepRequest* request,
                                       bpo::v1::CommitStepResponse* response) override;
  grpc::ServerUnaryReactor* ReportSnapshot(grpc::CallbackServerContext* context,
                                           const bpo::v1::ReportSnapshotRequest* request,
                                           bpo::v1::ReportSnapshotResponse* response) override;

 private:
  const ServiceContext* c_;
};

// All four services, for StartGrpcServer with the same `transport`.
// Requests are checked against `limits` (by default those of the store's
// config; the coordinator adds the policy's vocabulary size).
struct CoordinatorServices {
  CoordinatorServices(RunStore* store, RpcMetrics* metrics, TransportSecurity transport)
      : CoordinatorServices(store, metrics, std::move(transport),
                            LimitsFromConfig(store->config())) {}
  CoordinatorServices(RunStore* store, RpcMetrics* metrics, TransportSecurity transport,
                      ValidationLimits limits)
      : context{store, metrics, std::move(limits), std::move(transport),
                std::make_unique<RateLimiter>(
                    store->config().coordinator().rpcs_per_second_max(),
                    2.0 * store->config().coordinator().rpcs_per_second_max())},
        coordinator(&context),
        prompts(&context),
        annotation(&context),
        learner(&context) {
    // Batches hold only pairs within these limits (RunStore::SetPairCheck).
    store->SetPairCheck([limits = context.limits](const bpo::v1::SampledPair& pair) {
      return CheckPairBounds(pair, limits);
    });
  }
  std::vector<grpc::Service*> list() { return {&coordinator, &prompts, &annotation, &learner}; }
  const ServiceContext context;  // before the services, which point at it
  CoordinatorService coordinator;
  PromptQueueService prompts;
  AnnotationQueueService annotation;
  LearnerFeedService learner;
};

// Exports the store's state at every scrape: pairs by state, active leases,
// leases granted and expired, duplicates and rejections, committed steps,
// phase, staleness and the workers by kind. The store must outlive it.
std::unique_ptr<metrics::Collector> MakeStoreCollector(RunStore* store);

}  // namespace bpo::coordinator

#endif  // BPO_COORDINATOR_SERVICE_H_
