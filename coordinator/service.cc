#include "coordinator/service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/rpc.h"
#include "common/status_macros.h"

namespace bpo::coordinator {
namespace {

// Runs `call` (returning StatusOr<Response>) and finishes the RPC with it.
template <typename Response, typename Call>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, Response* response,
                                 RpcMetrics* metrics, const char* method, Call&& call) {
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<Response> result = call();
  absl::Status status = result.status();
  if (result.ok()) *response = std::move(*result);
  if (metrics != nullptr) {
    metrics->Record(method,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                    status);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

class StoreCollector : public metrics::Collector {
 public:
  explicit StoreCollector(RunStore* store) : store_(store) {}
  void Collect(std::string* out) const override {
    absl::StatusOr<StoreCounters> c = store_->Counters();
    if (!c.ok()) return;
    using metrics::MetricType;
    metrics::WriteHeader("bpo_coordinator_pairs", "Pairs of the run by state", MetricType::kGauge,
                         out);
    for (const auto& [state, n] : c->pairs) {
      metrics::WriteSample("bpo_coordinator_pairs", {{"state", PairStateName(state)}},
                           static_cast<double>(n), out);
    }
    metrics::WriteHeader("bpo_coordinator_leases_active", "Work items under lease",
                         MetricType::kGauge, out);
    metrics::WriteSample("bpo_coordinator_leases_active", {{"queue", "prompts"}},
                         static_cast<double>(c->prompt_leases_active), out);
    metrics::WriteSample("bpo_coordinator_leases_active", {{"queue", "labels"}},
                         static_cast<double>(c->label_leases_active), out);
    auto counter = [&](const char* name, const char* help, int64_t v) {
      metrics::WriteHeader(name, help, MetricType::kCounter, out);
      metrics::WriteSample(name, {}, static_cast<double>(v), out);
    };
    auto gauge = [&](const char* name, const char* help, double v) {
      metrics::WriteHeader(name, help, MetricType::kGauge, out);
      metrics::WriteSample(name, {}, v, out);
    };
    metrics::WriteHeader("bpo_coordinator_workers",
                         "Workers seen within the worker timeout, by kind", MetricType::kGauge,
                         out);
    for (const auto& [kind, n] : c->workers_active) {
      metrics::WriteSample("bpo_coordinator_workers", {{"kind", kind}}, static_cast<double>(n),
                           out);
    }
    counter("bpo_coordinator_leases_granted_total", "Leases granted (prompts and labels)",
            c->leases_granted);
    counter("bpo_coordinator_leases_expired_total", "Leases that ran out; their work was re-queued",
            c->leases_expired);
    counter("bpo_coordinator_duplicate_submissions_total",
            "Submitted items already recorded (retries), ignored", c->duplicates);
    counter("bpo_coordinator_rejected_submissions_total", "Submitted items refused", c->rejected);
    counter("bpo_coordinator_steps_committed_total", "Learner steps committed", c->steps_committed);
    const auto& sch = store_->config().schedule();
    gauge("bpo_coordinator_total_steps", "T: learner steps of the run", sch.total_steps());
    gauge("bpo_coordinator_phase", "Current annotation phase p (0-based)",
          static_cast<double>(std::min<int64_t>(
              sch.phases() - 1, c->steps_committed / (sch.total_steps() / sch.phases()))));
    gauge("bpo_coordinator_staleness_max",
          "Largest phase minus behavior version of a pair handed to the learner",
          static_cast<double>(c->max_staleness));
  }

 private:
  RunStore* store_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RpcMetrics>> RpcMetrics::Create(metrics::Registry* registry) {
  auto m = std::make_unique<RpcMetrics>();
  BPO_ASSIGN_OR_RETURN(
      m->latency_,
      registry->AddHistogram("bpo_coordinator_rpc_seconds", "Coordinator RPC latency by method",
                             metrics::ExponentialBuckets(1e-4, 2.5, 14), {"method"}));
  BPO_ASSIGN_OR_RETURN(m->calls_, registry->AddCounter("bpo_coordinator_rpcs_total",
                                                       "Coordinator RPCs by method and status code",
                                                       {"method", "code"}));
  return m;
}

void RpcMetrics::Record(const std::string& method, double seconds, const absl::Status& status) {
  latency_->Add({{"method", method}}).Observe(seconds);
  calls_->Add({{"method", method}, {"code", absl::StatusCodeToString(status.code())}}).Increment();
}

// Validates the request, then runs it on the store.
#define BPO_ANSWER(Method, Store)                                                                  \
  return Answer(context, response, metrics_, #Method, [&]() -> decltype(Store->Method(*request)) { \
    if (absl::Status s = Validate(*request, *limits_); !s.ok()) return s;                          \
    return Store->Method(*request);                                                                \
  })

grpc::ServerUnaryReactor* CoordinatorService::Register(grpc::CallbackServerContext* context,
                                                       const bpo::v1::RegisterRequest* request,
                                                       bpo::v1::RegisterResponse* response) {
  BPO_ANSWER(Register, store_);
}
grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(grpc::CallbackServerContext* context,
                                                        const bpo::v1::HeartbeatRequest* request,
                                                        bpo::v1::HeartbeatResponse* response) {
  BPO_ANSWER(Heartbeat, store_);
}
grpc::ServerUnaryReactor* CoordinatorService::GetRunStatus(grpc::CallbackServerContext* context,
                                                           const bpo::v1::GetRunStatusRequest*,
                                                           bpo::v1::RunStatus* response) {
  return Answer(context, response, metrics_, "GetRunStatus", [&] { return store_->Status(); });
}
grpc::ServerUnaryReactor* PromptQueueService::LeasePrompts(
    grpc::CallbackServerContext* context, const bpo::v1::LeasePromptsRequest* request,
    bpo::v1::LeasePromptsResponse* response) {
  BPO_ANSWER(LeasePrompts, store_);
}
grpc::ServerUnaryReactor* PromptQueueService::SubmitPairs(
    grpc::CallbackServerContext* context, const bpo::v1::SubmitPairsRequest* request,
    bpo::v1::SubmitPairsResponse* response) {
  return Answer(context, response, metrics_, "SubmitPairs",
                [&]() -> absl::StatusOr<bpo::v1::SubmitPairsResponse> {
                  BPO_RETURN_IF_ERROR(Validate(*request, *limits_));
                  // Pairs out of bounds are rejected one by one; the store sees the rest.
                  bpo::v1::SubmitPairsRequest fit = *request;
                  fit.clear_pairs();
                  bpo::v1::SubmitPairsResponse refused;
                  for (const bpo::v1::SampledPair& pair : request->pairs()) {
                    if (std::string why = CheckPairBounds(pair, *limits_); !why.empty()) {
                      bpo::v1::ItemStatus* item = refused.add_results();
                      item->set_id(pair.pair_id());
                      item->set_outcome(bpo::v1::ItemStatus::REJECTED);
                      item->set_code(static_cast<int32_t>(absl::StatusCode::kInvalidArgument));
                      item->set_message(absl::StrCat("pair '", pair.pair_id(), "': ", why));
                    } else {
                      *fit.add_pairs() = pair;
                    }
                  }
                  BPO_ASSIGN_OR_RETURN(bpo::v1::SubmitPairsResponse stored,
                                       store_->SubmitPairs(fit));
                  refused.mutable_results()->MergeFrom(stored.results());
                  return refused;
                });
}
grpc::ServerUnaryReactor* PromptQueueService::ReturnPrompts(
    grpc::CallbackServerContext* context, const bpo::v1::ReturnPromptsRequest* request,
    bpo::v1::ReturnPromptsResponse* response) {
  BPO_ANSWER(ReturnPrompts, store_);
}
grpc::ServerUnaryReactor* AnnotationQueueService::LeasePairs(
    grpc::CallbackServerContext* context, const bpo::v1::LeasePairsRequest* request,
    bpo::v1::LeasePairsResponse* response) {
  BPO_ANSWER(LeasePairs, store_);
}
grpc::ServerUnaryReactor* AnnotationQueueService::ExtendLease(
    grpc::CallbackServerContext* context, const bpo::v1::ExtendLeaseRequest* request,
    bpo::v1::ExtendLeaseResponse* response) {
  BPO_ANSWER(ExtendLease, store_);
}
grpc::ServerUnaryReactor* AnnotationQueueService::SubmitLabels(
    grpc::CallbackServerContext* context, const bpo::v1::SubmitLabelsRequest* request,
    bpo::v1::SubmitLabelsResponse* response) {
  BPO_ANSWER(SubmitLabels, store_);
}
grpc::ServerUnaryReactor* LearnerFeedService::FetchBatch(grpc::CallbackServerContext* context,
                                                         const bpo::v1::FetchBatchRequest* request,
                                                         bpo::v1::FetchBatchResponse* response) {
  BPO_ANSWER(FetchBatch, store_);
}
grpc::ServerUnaryReactor* LearnerFeedService::CommitStep(grpc::CallbackServerContext* context,
                                                         const bpo::v1::CommitStepRequest* request,
                                                         bpo::v1::CommitStepResponse* response) {
  BPO_ANSWER(CommitStep, store_);
}
grpc::ServerUnaryReactor* LearnerFeedService::ReportSnapshot(
    grpc::CallbackServerContext* context, const bpo::v1::ReportSnapshotRequest* request,
    bpo::v1::ReportSnapshotResponse* response) {
  BPO_ANSWER(ReportSnapshot, store_);
}

#undef BPO_ANSWER

std::unique_ptr<metrics::Collector> MakeStoreCollector(RunStore* store) {
  return std::make_unique<StoreCollector>(store);
}

}  // namespace bpo::coordinator
