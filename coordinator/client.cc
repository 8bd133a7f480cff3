#include "coordinator/client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/address_file.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "common/status_macros.h"

namespace bpo::coordinator {

CoordinatorClient::CoordinatorClient(ClientOptions options) : options_(std::move(options)) {}

CoordinatorClient::~CoordinatorClient() {
  stop_.Notify();
  if (heartbeat_.joinable()) heartbeat_.join();
}

absl::StatusOr<std::shared_ptr<const CoordinatorClient::Stubs>> CoordinatorClient::Dial(
    absl::Duration timeout) const {
  const absl::Time give_up = absl::Now() + timeout;
  while (true) {
    // A file endpoint may not be written yet, or name the address of a
    // coordinator that has since restarted: read it again on every try.
    absl::StatusOr<std::string> address = ResolveEndpoint(options_.address);
    absl::Status failed = address.status();
    if (address.ok()) {
      const absl::Duration left = give_up - absl::Now();
      const absl::Duration attempt =
          IsFileEndpoint(options_.address) ? std::min(left, absl::Seconds(2)) : left;
      absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
          bpo::Connect(*address, "coordinator", std::max(attempt, absl::Milliseconds(1)),
                       options_.transport, Role::kCoordinator);
      if (channel.ok()) {
        auto stubs = std::make_shared<Stubs>();
        stubs->address = *address;
        stubs->channel = *channel;
        stubs->coordinator = bpo::v1::Coordinator::NewStub(stubs->channel);
        stubs->prompts = bpo::v1::PromptQueue::NewStub(stubs->channel);
        stubs->annotation = bpo::v1::AnnotationQueue::NewStub(stubs->channel);
        stubs->learner = bpo::v1::LearnerFeed::NewStub(stubs->channel);
        return std::shared_ptr<const Stubs>(std::move(stubs));
      }
      failed = channel.status();
    }
    if (!absl::IsUnavailable(failed) || absl::Now() + absl::Milliseconds(100) > give_up) {
      if (IsFileEndpoint(options_.address) && absl::IsUnavailable(failed)) {
        return absl::UnavailableError(
            absl::StrCat("coordinator at ", options_.address, ": ", failed.message()));
      }
      return failed;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorClient::Connect(
    ClientOptions options) {
  std::unique_ptr<CoordinatorClient> c(new CoordinatorClient(std::move(options)));
  BPO_ASSIGN_OR_RETURN(std::shared_ptr<const Stubs> stubs, c->Dial(c->options_.retry_for));
  absl::MutexLock lock(&c->mu_);
  c->stubs_ = std::move(stubs);
  return c;
}

std::shared_ptr<const CoordinatorClient::Stubs> CoordinatorClient::stubs() const {
  absl::MutexLock lock(&mu_);
  return stubs_;
}

std::string CoordinatorClient::resolved_address() const { return stubs()->address; }

void CoordinatorClient::Refresh() {
  if (!IsFileEndpoint(options_.address)) return;
  absl::StatusOr<std::string> address = ResolveEndpoint(options_.address);
  if (!address.ok() || *address == stubs()->address) return;
  absl::StatusOr<std::shared_ptr<const Stubs>> fresh = Dial(absl::Seconds(1));
  if (!fresh.ok()) return;
  BPO_LOG(INFO) << "the coordinator moved to " << (*fresh)->address << " (" << options_.address
                << ")";
  absl::MutexLock lock(&mu_);
  stubs_ = std::move(*fresh);
}

absl::Status CoordinatorClient::Call(
    const char* method,
    const std::function<grpc::Status(const Stubs&, grpc::ClientContext*)>& call) {
  const absl::Time give_up = absl::Now() + options_.retry_for;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    std::shared_ptr<const Stubs> stubs = this->stubs();
    grpc::ClientContext context;
    SetDeadline(&context, options_.rpc_deadline);
    grpc::Status s = call(*stubs, &context);
    if (s.ok()) return absl::OkStatus();
    const bool retry = s.error_code() == grpc::StatusCode::UNAVAILABLE;
    if (!retry || absl::Now() + backoff > give_up) {
      return FromGrpcStatus(s, absl::StrCat(method, " at ", stubs->address));
    }
    BPO_LOG(WARNING) << method << ": coordinator at " << stubs->address
                     << " unavailable, retrying (" << s.error_message() << ")";
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
    Refresh();
  }
}

absl::StatusOr<bpo::v1::RegisterResponse> CoordinatorClient::Register(
    const bpo::v1::WorkerInfo& info) {
  bpo::v1::RegisterRequest request;
  *request.mutable_worker() = info;
  bpo::v1::RegisterResponse response;
  BPO_RETURN_IF_ERROR(Call("Coordinator.Register", [&](const Stubs& s, grpc::ClientContext* c) {
    return s.coordinator->Register(c, request, &response);
  }));
  worker_id_ = response.worker_id();
  return response;
}

absl::StatusOr<bpo::v1::RunStatus> CoordinatorClient::Status() {
  bpo::v1::RunStatus response;
  BPO_RETURN_IF_ERROR(Call("Coordinator.GetRunStatus", [&](const Stubs& s, grpc::ClientContext* c) {
    return s.coordinator->GetRunStatus(c, bpo::v1::GetRunStatusRequest(), &response);
  }));
  return response;
}

absl::StatusOr<bpo::v1::LeasePromptsResponse> CoordinatorClient::LeasePrompts(int max_prompts) {
  bpo::v1::LeasePromptsRequest request;
  request.set_worker_id(worker_id_);
  request.set_max_prompts(max_prompts);
  bpo::v1::LeasePromptsResponse response;
  BPO_RETURN_IF_ERROR(Call("PromptQueue.LeasePrompts", [&](const Stubs& s, grpc::ClientContext* c) {
    return s.prompts->LeasePrompts(c, request, &response);
  }));
  return response;
}

absl::StatusOr<bpo::v1::SubmitPairsResponse> CoordinatorClient::SubmitPairs(
    bpo::v1::SubmitPairsRequest request) {
  request.set_worker_id(worker_id_);
  bpo::v1::SubmitPairsResponse response;
  BPO_RETURN_IF_ERROR(Call("PromptQueue.SubmitPairs", [&](const Stubs& s, grpc::ClientContext* c) {
    return s.prompts->SubmitPairs(c, request, &response);
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
  BPO_RETURN_IF_ERROR(
      Call("AnnotationQueue.LeasePairs", [&](const Stubs& s, grpc::ClientContext* c) {
        return s.annotation->LeasePairs(c, request, &response);
      }));
  return response;
}

absl::StatusOr<bpo::v1::SubmitLabelsResponse> CoordinatorClient::SubmitLabels(
    bpo::v1::SubmitLabelsRequest request) {
  request.set_worker_id(worker_id_);
  bpo::v1::SubmitLabelsResponse response;
  BPO_RETURN_IF_ERROR(
      Call("AnnotationQueue.SubmitLabels", [&](const Stubs& s, grpc::ClientContext* c) {
        return s.annotation->SubmitLabels(c, request, &response);
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
  BPO_RETURN_IF_ERROR(Call("LearnerFeed.FetchBatch", [&](const Stubs& s, grpc::ClientContext* c) {
    return s.learner->FetchBatch(c, request, &response);
  }));
  return response;
}

absl::StatusOr<bpo::v1::CommitStepResponse> CoordinatorClient::CommitStep(
    bpo::v1::CommitStepRequest request) {
  request.set_worker_id(worker_id_);
  bpo::v1::CommitStepResponse response;
  BPO_RETURN_IF_ERROR(Call("LearnerFeed.CommitStep", [&](const Stubs& s, grpc::ClientContext* c) {
    return s.learner->CommitStep(c, request, &response);
  }));
  return response;
}

absl::Status CoordinatorClient::ReportSnapshot(bpo::v1::ReportSnapshotRequest request) {
  request.set_worker_id(worker_id_);
  bpo::v1::ReportSnapshotResponse response;
  return Call("LearnerFeed.ReportSnapshot", [&](const Stubs& s, grpc::ClientContext* c) {
    return s.learner->ReportSnapshot(c, request, &response);
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

absl::StatusOr<bool> CoordinatorClient::RunDone(absl::Duration max_age) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == bpo::v1::RUN_STATE_DONE) return true;
    const absl::Time now = absl::Now();
    if (now - status_checked_ < max_age) return false;
    status_checked_ = now;
  }
  BPO_ASSIGN_OR_RETURN(bpo::v1::RunStatus status, Status());
  return status.state() == bpo::v1::RUN_STATE_DONE;
}

void CoordinatorClient::MarkProgress() {
  absl::MutexLock lock(&mu_);
  last_progress_ = absl::Now();
  if (stalled_) BPO_LOG(INFO) << "progress again after a stall";
  stalled_ = false;
}

void CoordinatorClient::StartHeartbeats(absl::Duration interval, absl::Duration stall_timeout,
                                        std::function<void(absl::Duration)> on_stall) {
  stall_timeout_ = stall_timeout;
  on_stall_ = std::move(on_stall);
  {
    absl::MutexLock lock(&mu_);
    last_progress_ = absl::Now();
  }
  heartbeat_ = std::thread([this, interval] {
    while (!stop_.WaitForNotificationWithTimeout(interval)) {
      bpo::v1::HeartbeatRequest request;
      request.set_worker_id(worker_id_);
      bool stalled_now = false;
      absl::Duration since_progress;
      {
        absl::MutexLock lock(&mu_);
        since_progress = absl::Now() - last_progress_;
        const bool stalled =
            stall_timeout_ > absl::ZeroDuration() && since_progress > stall_timeout_;
        stalled_now = stalled && !stalled_;
        stalled_ = stalled;
        // A stalled worker's leases are not extended: they expire and their
        // work goes to a worker that makes progress.
        if (!stalled) {
          for (const auto& id : leases_) request.add_lease_ids(id);
        }
      }
      if (stalled_now) {
        BPO_LOG(ERROR) << "no progress for " << absl::FormatDuration(since_progress)
                       << " (coordinator.stall_seconds " << absl::FormatDuration(stall_timeout_)
                       << "): leases are no longer extended";
        if (on_stall_) on_stall_(since_progress);
      }
      std::shared_ptr<const Stubs> stubs = this->stubs();
      bpo::v1::HeartbeatResponse response;
      grpc::ClientContext context;
      SetDeadline(&context, options_.rpc_deadline);
      grpc::Status s = stubs->coordinator->Heartbeat(&context, request, &response);
      if (!s.ok()) {
        BPO_LOG(WARNING) << "heartbeat to " << stubs->address << ": " << s.error_message();
        if (s.error_code() == grpc::StatusCode::UNAVAILABLE) Refresh();
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
