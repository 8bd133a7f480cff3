#include "coordinator/client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "common/status_macros.h"

namespace bpo::coordinator {

CoordinatorClient::CoordinatorClient(ClientOptions options) : options_(std::move(options)) {}

CoordinatorClient::~CoordinatorClient() {
  stop_.Notify();
  if (heartbeat_.joinable()) heartbeat_.join();
}

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorClient::Connect(
    ClientOptions options) {
  std::unique_ptr<CoordinatorClient> c(new CoordinatorClient(std::move(options)));
  BPO_ASSIGN_OR_RETURN(c->channel_,
                       bpo::Connect(c->options_.address, "coordinator", c->options_.retry_for,
                                    c->options_.transport, Role::kCoordinator));
  c->coordinator_ = bpo::v1::Coordinator::NewStub(c->channel_);
  c->prompts_ = bpo::v1::PromptQueue::NewStub(c->channel_);
  c->annotation_ = bpo::v1::AnnotationQueue::NewStub(c->channel_);
  c->learner_ = bpo::v1::LearnerFeed::NewStub(c->channel_);
  return c;
}

absl::Status CoordinatorClient::Call(
    const char* method, const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  const absl::Time give_up = absl::Now() + options_.retry_for;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    grpc::ClientContext context;
    SetDeadline(&context, options_.rpc_deadline);
    grpc::Status s = call(&context);
    if (s.ok()) return absl::OkStatus();
    const bool retry = s.error_code() == grpc::StatusCode::UNAVAILABLE;
    if (!retry || absl::Now() + backoff > give_up) {
      return FromGrpcStatus(s, absl::StrCat(method, " at ", options_.address));
    }
    BPO_LOG(WARNING) << method << ": coordinator at " << options_.address
                     << " unavailable, retrying (" << s.error_message() << ")";
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::StatusOr<bpo::v1::RegisterResponse> CoordinatorClient::Register(
    const bpo::v1::WorkerInfo& info) {
  bpo::v1::RegisterRequest request;
  *request.mutable_worker() = info;
  bpo::v1::RegisterResponse response;
  BPO_RETURN_IF_ERROR(Call("Coordinator.Register", [&](grpc::ClientContext* c) {
    return coordinator_->Register(c, request, &response);
  }));
  worker_id_ = response.worker_id();
  return response;
}

absl::StatusOr<bpo::v1::RunStatus> CoordinatorClient::Status() {
  bpo::v1::RunStatus response;
  BPO_RETURN_IF_ERROR(Call("Coordinator.GetRunStatus", [&](grpc::ClientContext* c) {
    return coordinator_->GetRunStatus(c, bpo::v1::GetRunStatusRequest(), &response);
  }));
  return response;
}

absl::StatusOr<bpo::v1::LeasePromptsResponse> CoordinatorClient::LeasePrompts(int max_prompts) {
  bpo::v1::LeasePromptsRequest request;
  request.set_worker_id(worker_id_);
  request.set_max_prompts(max_prompts);
  bpo::v1::LeasePromptsResponse response;
  BPO_RETURN_IF_ERROR(Call("PromptQueue.LeasePrompts", [&](grpc::ClientContext* c) {
    return prompts_->LeasePrompts(c, request, &response);
  }));
  return response;
}

absl::StatusOr<bpo::v1::SubmitPairsResponse> CoordinatorClient::SubmitPairs(
    bpo::v1::SubmitPairsRequest request) {
  request.set_worker_id(worker_id_);
  bpo::v1::SubmitPairsResponse response;
  BPO_RETURN_IF_ERROR(Call("PromptQueue.SubmitPairs", [&](grpc::ClientContext* c) {
    return prompts_->SubmitPairs(c, request, &response);
  }));
  return response;
}

absl::StatusOr<bpo::v1::LeasePairsResponse> CoordinatorClient::LeasePairs(int max_pairs,
                                                                          absl::Duration duration) {
  bpo::v1::LeasePairsRequest request;
  request.set_worker_id(worker_id_);
  request.set_max_pairs(max_pairs);
  request.mutable_lease_duration()->set_seconds(absl::ToInt64Seconds(duration));
  bpo::v1::LeasePairsResponse response;
  BPO_RETURN_IF_ERROR(Call("AnnotationQueue.LeasePairs", [&](grpc::ClientContext* c) {
    return annotation_->LeasePairs(c, request, &response);
  }));
  return response;
}

absl::StatusOr<bpo::v1::SubmitLabelsResponse> CoordinatorClient::SubmitLabels(
    bpo::v1::SubmitLabelsRequest request) {
  request.set_worker_id(worker_id_);
  bpo::v1::SubmitLabelsResponse response;
  BPO_RETURN_IF_ERROR(Call("AnnotationQueue.SubmitLabels", [&](grpc::ClientContext* c) {
    return annotation_->SubmitLabels(c, request, &response);
  }));
  return response;
}

absl::StatusOr<bpo::v1::FetchBatchResponse> CoordinatorClient::FetchBatch(int64_t step, int rank,
                                                                          int world_size) {
  bpo::v1::FetchBatchRequest request;
  request.set_worker_id(worker_id_);
  request.set_step(step);
  request.set_rank(rank);
  request.set_world_size(world_size);
  bpo::v1::FetchBatchResponse response;
  BPO_RETURN_IF_ERROR(Call("LearnerFeed.FetchBatch", [&](grpc::ClientContext* c) {
    return learner_->FetchBatch(c, request, &response);
  }));
  return response;
}

absl::StatusOr<bpo::v1::CommitStepResponse> CoordinatorClient::CommitStep(
    bpo::v1::CommitStepRequest request) {
  request.set_worker_id(worker_id_);
  bpo::v1::CommitStepResponse response;
  BPO_RETURN_IF_ERROR(Call("LearnerFeed.CommitStep", [&](grpc::ClientContext* c) {
    return learner_->CommitStep(c, request, &response);
  }));
  return response;
}

absl::Status CoordinatorClient::ReportSnapshot(bpo::v1::ReportSnapshotRequest request) {
  request.set_worker_id(worker_id_);
  bpo::v1::ReportSnapshotResponse response;
  return Call("LearnerFeed.ReportSnapshot", [&](grpc::ClientContext* c) {
    return learner_->ReportSnapshot(c, request, &response);
  });
}

void CoordinatorClient::HoldLease(const std::string& lease_id) {
  absl::MutexLock lock(&mu_);
  leases_.insert(lease_id);
}

void CoordinatorClient::ReleaseLease(const std::string& lease_id) {
  absl::MutexLock lock(&mu_);
  leases_.erase(lease_id);
}

bpo::v1::RunState CoordinatorClient::last_state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void CoordinatorClient::StartHeartbeats(absl::Duration interval) {
  heartbeat_ = std::thread([this, interval] {
    while (!stop_.WaitForNotificationWithTimeout(interval)) {
      bpo::v1::HeartbeatRequest request;
      request.set_worker_id(worker_id_);
      {
        absl::MutexLock lock(&mu_);
        for (const auto& id : leases_) request.add_lease_ids(id);
      }
      bpo::v1::HeartbeatResponse response;
      grpc::ClientContext context;
      SetDeadline(&context, options_.rpc_deadline);
      grpc::Status s = coordinator_->Heartbeat(&context, request, &response);
      if (!s.ok()) {
        BPO_LOG(WARNING) << "heartbeat to " << options_.address << ": " << s.error_message();
        continue;
      }
      absl::MutexLock lock(&mu_);
      state_ = response.state();
    }
  });
}

void SleepRetryAfter(const google::protobuf::Duration& retry_after) {
  absl::Duration d = absl::Seconds(retry_after.seconds()) + absl::Nanoseconds(retry_after.nanos());
  absl::SleepFor(std::clamp(d, absl::Milliseconds(50), absl::Seconds(5)));
}

}  // namespace bpo::coordinator
