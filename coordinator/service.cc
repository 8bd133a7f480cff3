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

namespace {

// The authenticated caller, within its call budget.
absl::StatusOr<Identity> Caller(const grpc::CallbackServerContext& context,
                                const ServiceContext& c) {
  BPO_ASSIGN_OR_RETURN(Identity caller, PeerIdentity(context, c.transport));
  if (caller.role != Role::kPlaintext && !c.limiter->Admit(caller.ToString())) {
    return absl::ResourceExhaustedError(
        absl::StrCat(caller.ToString(), " calls more than ",
                     c.store->config().coordinator().rpcs_per_second_max(),
                     " times a second (coordinator.rpcs_per_second_max): retry later"));
  }
  return caller;
}

// OK when the caller may make `method` about `worker_id`: it has `role` and is
// the identity that registered the worker. Plaintext callers may do anything.
absl::Status Authorize(const grpc::CallbackServerContext& context, const ServiceContext& c,
                       std::initializer_list<Role> roles, const std::string& worker_id,
                       absl::string_view method) {
  BPO_ASSIGN_OR_RETURN(const Identity caller, Caller(context, c));
  BPO_RETURN_IF_ERROR(RequireRole(caller, roles, method));
  if (caller.role == Role::kPlaintext) return absl::OkStatus();
  BPO_ASSIGN_OR_RETURN(const bpo::v1::WorkerInfo worker, c.store->GetWorker(worker_id));
  if (worker.identity() != caller.ToString()) {
    return absl::PermissionDeniedError(absl::StrCat(method, ": worker '", worker_id,
                                                    "' belongs to identity '", worker.identity(),
                                                    "'; the caller is ", caller.ToString()));
  }
  return absl::OkStatus();
}

Role RoleOfKind(bpo::v1::WorkerKind kind) {
  switch (kind) {
    case bpo::v1::WORKER_KIND_ACTOR:
      return Role::kActor;
    case bpo::v1::WORKER_KIND_ANNOTATOR:
      return Role::kAnnotator;
    case bpo::v1::WORKER_KIND_LEARNER:
      return Role::kLearner;
    default:
      return Role::kObserver;  // refused by Validate before it matters
  }
}

}  // namespace

// Authorizes the caller for `roles`, validates the request, then runs it on
// the store.
#define BPO_ANSWER(Service, Method, ...)                                                          \
  return Answer(                                                                                  \
      context, response, c_->metrics, #Method, [&]() -> decltype(c_->store->Method(*request)) {   \
        BPO_RETURN_IF_ERROR(                                                                      \
            Authorize(*context, *c_, {__VA_ARGS__}, request->worker_id(), #Service "." #Method)); \
        BPO_RETURN_IF_ERROR(Validate(*request, c_->limits));                                      \
        return c_->store->Method(*request);                                                       \
      })

grpc::ServerUnaryReactor* CoordinatorService::Register(grpc::CallbackServerContext* context,
                                                       const bpo::v1::RegisterRequest* request,
                                                       bpo::v1::RegisterResponse* response) {
  return Answer(context, response, c_->metrics, "Register",
                [&]() -> absl::StatusOr<bpo::v1::RegisterResponse> {
                  BPO_RETURN_IF_ERROR(Validate(*request, c_->limits));
                  BPO_ASSIGN_OR_RETURN(const Identity caller, Caller(*context, *c_));
                  BPO_RETURN_IF_ERROR(RequireRole(
                      caller, {RoleOfKind(request->worker().kind())},
                      absl::StrCat("Coordinator.Register as ",
                                   bpo::v1::WorkerKind_Name(request->worker().kind()))));
                  // The worker belongs to whoever registered it, whatever it says.
                  bpo::v1::RegisterRequest owned = *request;
                  owned.mutable_worker()->set_identity(
                      caller.role == Role::kPlaintext ? "" : caller.ToString());
                  return c_->store->Register(owned);
                });
}
grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(grpc::CallbackServerContext* context,
                                                        const bpo::v1::HeartbeatRequest* request,
                                                        bpo::v1::HeartbeatResponse* response) {
  BPO_ANSWER(Coordinator, Heartbeat, Role::kActor, Role::kAnnotator, Role::kLearner);
}
grpc::ServerUnaryReactor* CoordinatorService::GetRunStatus(grpc::CallbackServerContext* context,
                                                           const bpo::v1::GetRunStatusRequest*,
                                                           bpo::v1::RunStatus* response) {
  return Answer(context, response, c_->metrics, "GetRunStatus",
                [&]() -> absl::StatusOr<bpo::v1::RunStatus> {
                  // Any authenticated identity of the run may read it.
                  BPO_RETURN_IF_ERROR(Caller(*context, *c_).status());
                  return c_->store->Status();
                });
}
grpc::ServerUnaryReactor* PromptQueueService::LeasePrompts(
    grpc::CallbackServerContext* context, const bpo::v1::LeasePromptsRequest* request,
    bpo::v1::LeasePromptsResponse* response) {
  BPO_ANSWER(PromptQueue, LeasePrompts, Role::kActor);
}
grpc::ServerUnaryReactor* PromptQueueService::SubmitPairs(
    grpc::CallbackServerContext* context, const bpo::v1::SubmitPairsRequest* request,
    bpo::v1::SubmitPairsResponse* response) {
  return Answer(context, response, c_->metrics, "SubmitPairs",
                [&]() -> absl::StatusOr<bpo::v1::SubmitPairsResponse> {
                  BPO_RETURN_IF_ERROR(Authorize(*context, *c_, {Role::kActor}, request->worker_id(),
                                                "PromptQueue.SubmitPairs"));
                  BPO_RETURN_IF_ERROR(Validate(*request, c_->limits));
                  // Pairs out of bounds are rejected one by one; the store sees the rest.
                  bpo::v1::SubmitPairsRequest fit = *request;
                  fit.clear_pairs();
                  bpo::v1::SubmitPairsResponse refused;
                  for (const bpo::v1::SampledPair& pair : request->pairs()) {
                    if (std::string why = CheckPairBounds(pair, c_->limits); !why.empty()) {
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
                                       c_->store->SubmitPairs(fit));
                  refused.mutable_results()->MergeFrom(stored.results());
                  return refused;
                });
}
grpc::ServerUnaryReactor* PromptQueueService::ReturnPrompts(
    grpc::CallbackServerContext* context, const bpo::v1::ReturnPromptsRequest* request,
    bpo::v1::ReturnPromptsResponse* response) {
  BPO_ANSWER(PromptQueue, ReturnPrompts, Role::kActor);
}
grpc::ServerUnaryReactor* AnnotationQueueService::LeasePairs(
    grpc::CallbackServerContext* context, const bpo::v1::LeasePairsRequest* request,
    bpo::v1::LeasePairsResponse* response) {
  BPO_ANSWER(AnnotationQueue, LeasePairs, Role::kAnnotator);
}
grpc::ServerUnaryReactor* AnnotationQueueService::ExtendLease(
    grpc::CallbackServerContext* context, const bpo::v1::ExtendLeaseRequest* request,
    bpo::v1::ExtendLeaseResponse* response) {
  BPO_ANSWER(AnnotationQueue, ExtendLease, Role::kAnnotator);
}
grpc::ServerUnaryReactor* AnnotationQueueService::SubmitLabels(
    grpc::CallbackServerContext* context, const bpo::v1::SubmitLabelsRequest* request,
    bpo::v1::SubmitLabelsResponse* response) {
  BPO_ANSWER(AnnotationQueue, SubmitLabels, Role::kAnnotator);
}
grpc::ServerUnaryReactor* LearnerFeedService::FetchBatch(grpc::CallbackServerContext* context,
                                                         const bpo::v1::FetchBatchRequest* request,
                                                         bpo::v1::FetchBatchResponse* response) {
  BPO_ANSWER(LearnerFeed, FetchBatch, Role::kLearner);
}
grpc::ServerUnaryReactor* LearnerFeedService::CommitStep(grpc::CallbackServerContext* context,
                                                         const bpo::v1::CommitStepRequest* request,
                                                         bpo::v1::CommitStepResponse* response) {
  BPO_ANSWER(LearnerFeed, CommitStep, Role::kLearner);
}
grpc::ServerUnaryReactor* LearnerFeedService::ReportSnapshot(
    grpc::CallbackServerContext* context, const bpo::v1::ReportSnapshotRequest* request,
    bpo::v1::ReportSnapshotResponse* response) {
  BPO_ANSWER(LearnerFeed, ReportSnapshot, Role::kLearner);
}

#undef BPO_ANSWER

std::unique_ptr<metrics::Collector> MakeStoreCollector(RunStore* store) {
  return std::make_unique<StoreCollector>(store);
}

}  // namespace bpo::coordinator
