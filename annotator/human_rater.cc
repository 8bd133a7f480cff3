#include "annotator/human_rater.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rpc.h"
#include "common/status_macros.h"

namespace bpo::annotator {
namespace {

// Runs one unary call with the stubs' deadline; `what` names it in errors.
template <typename Response, typename Request, typename Method>
absl::StatusOr<Response> Call(const CoordinatorStubs& stubs, absl::string_view what,
                              const Request& request, Method&& method) {
  grpc::ClientContext context;
  SetDeadline(&context, stubs.deadline);
  Response response;
  const grpc::Status status = method(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status, absl::StrCat(what, " at ", stubs.address));
  return response;
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

}  // namespace

absl::StatusOr<Side> ParseSide(const std::string& name) {
  if (name == "left") return Side::kLeft;
  if (name == "right") return Side::kRight;
  if (name == "tie") return Side::kTie;
  if (name == "skip") return Side::kSkip;
  return absl::InvalidArgumentError(
      absl::StrCat("choice '", name, "' must be one of left, right, tie, skip"));
}

bpo::v1::Choice ToChoice(Side side, bool swapped) {
  switch (side) {
    case Side::kLeft:
      return swapped ? bpo::v1::CHOICE_B : bpo::v1::CHOICE_A;
    case Side::kRight:
      return swapped ? bpo::v1::CHOICE_A : bpo::v1::CHOICE_B;
    case Side::kTie:
      return bpo::v1::CHOICE_TIE;
    case Side::kSkip:
      return bpo::v1::CHOICE_SKIP;
  }
  return bpo::v1::CHOICE_UNSPECIFIED;
}

RaterWork::RaterWork(std::string name, const CoordinatorStubs* stubs, RaterOptions options,
                     uint64_t seed)
    : name_(std::move(name)), stubs_(stubs), options_(options), rng_(seed) {}

absl::Status RaterWork::Register() {
  absl::MutexLock lock(&mu_);
  return RegisterLocked();
}

absl::Status RaterWork::RegisterLocked() {
  bpo::v1::RegisterRequest request;
  bpo::v1::WorkerInfo* info = request.mutable_worker();
  info->set_kind(bpo::v1::WORKER_KIND_ANNOTATOR);
  info->set_annotator_kind(bpo::v1::ANNOTATOR_KIND_HUMAN);
  info->set_name(provenance());
  info->set_host(HostName());
  info->set_bpo_version(BPO_VERSION_STRING);
  BPO_ASSIGN_OR_RETURN(bpo::v1::RegisterResponse response,
                       Call<bpo::v1::RegisterResponse>(*stubs_, "Coordinator.Register", request,
                                                       [this](auto* c, const auto& r, auto* o) {
                                                         return stubs_->coordinator->Register(c, r,
                                                                                              o);
                                                       }));
  worker_id_ = response.worker_id();
  const absl::Duration beat = FromProto(response.heartbeat_interval());
  heartbeat_interval_ = beat > absl::ZeroDuration() ? beat : absl::Seconds(2);
  const absl::Duration cap = absl::Seconds(response.config().annotation().lease_seconds());
  lease_span_ =
      cap > absl::ZeroDuration() ? std::min(cap, options_.lease_duration) : options_.lease_duration;
  return absl::OkStatus();
}

absl::StatusOr<bpo::v1::LeasePairsResponse> RaterWork::Lease() {
  bpo::v1::LeasePairsRequest request;
  request.set_max_pairs(options_.pairs_per_lease);
  SetDuration(options_.lease_duration, request.mutable_lease_duration());
  auto call = [&]() {
    request.set_worker_id(worker_id_);
    return Call<bpo::v1::LeasePairsResponse>(
        *stubs_, "AnnotationQueue.LeasePairs", request,
        [this](auto* c, const auto& r, auto* o) { return stubs_->queue->LeasePairs(c, r, o); });
  };
  absl::StatusOr<bpo::v1::LeasePairsResponse> response = call();
  if (response.status().code() == absl::StatusCode::kNotFound) {
    // The coordinator does not know this worker (restarted from another
    // store): register again and retry once.
    BPO_RETURN_IF_ERROR(RegisterLocked());
    response = call();
  }
  return response;
}

absl::StatusOr<RaterWork::Next> RaterWork::NextPair(absl::Time now) {
  Touch(now);
  absl::MutexLock lock(&mu_);
  if (worker_id_.empty()) BPO_RETURN_IF_ERROR(RegisterLocked());
  if (!shown_.has_value() && waiting_.empty()) {
    BPO_ASSIGN_OR_RETURN(bpo::v1::LeasePairsResponse leased, Lease());
    if (leased.pairs().empty()) {
      return Next{std::nullopt, std::max(FromProto(leased.retry_after()), absl::Seconds(1))};
    }
    lease_id_ = leased.lease().lease_id();
    for (auto& pair : *leased.mutable_pairs()) waiting_.push_back(std::move(pair));
    due_ = now + lease_span_ / 3;
  }
  if (!shown_.has_value()) {
    bpo::v1::SampledPair pair = std::move(waiting_.front());
    waiting_.pop_front();
    ShownPair shown;
    shown.pair_id = pair.pair_id();
    shown.prompt = pair.prompt().text();
    shown.swapped = (rng_() >> 63) != 0;
    shown.left = shown.swapped ? pair.b().text() : pair.a().text();
    shown.right = shown.swapped ? pair.a().text() : pair.b().text();
    shown.shown_at = now;
    shown_ = std::move(shown);
  }
  return Next{shown_, absl::ZeroDuration()};
}

absl::StatusOr<RaterWork::Outcome> RaterWork::Submit(const std::string& pair_id, Side side,
                                                     absl::Time now) {
  Touch(now);
  absl::MutexLock lock(&mu_);
  if (!shown_.has_value() || shown_->pair_id != pair_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("pair '", pair_id, "' is not the pair on your screen",
                     shown_.has_value() ? absl::StrCat(" (that is '", shown_->pair_id, "')") : ""));
  }
  Outcome outcome;
  outcome.choice = ToChoice(side, shown_->swapped);
  outcome.time_taken = std::max(now - shown_->shown_at, absl::ZeroDuration());
  bpo::v1::SubmitLabelsRequest request;
  request.set_worker_id(worker_id_);
  request.set_lease_id(lease_id_);
  bpo::v1::Label* label = request.add_labels();
  label->set_pair_id(pair_id);
  label->set_choice(outcome.choice);
  label->set_provenance(provenance());
  SetDuration(outcome.time_taken, label->mutable_time_taken());
  const int64_t micros = absl::ToUnixMicros(now);
  label->mutable_labeled_at()->set_seconds(micros / 1000000);
  label->mutable_labeled_at()->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
  // An RPC error leaves the pair on screen: the click can be retried
  // (submissions are idempotent).
  BPO_ASSIGN_OR_RETURN(
      bpo::v1::SubmitLabelsResponse response,
      Call<bpo::v1::SubmitLabelsResponse>(*stubs_, "AnnotationQueue.SubmitLabels", request,
                                          [this](auto* c, const auto& r, auto* o) {
                                            return stubs_->queue->SubmitLabels(c, r, o);
                                          }));
  shown_.reset();
  if (waiting_.empty()) {
    // The coordinator closes a lease once all its pairs are labelled.
    lease_id_.clear();
    due_ = now + heartbeat_interval_;
  }
  if (response.results_size() != 1) {
    return absl::InternalError(absl::StrCat("AnnotationQueue.SubmitLabels answered ",
                                            response.results_size(), " results for one label"));
  }
  const bpo::v1::ItemStatus& result = response.results(0);
  if (result.outcome() == bpo::v1::ItemStatus::REJECTED) {
    DropLease();
    return absl::FailedPreconditionError(
        absl::StrCat("the coordinator refused the label: ", result.message()));
  }
  outcome.duplicate = result.outcome() == bpo::v1::ItemStatus::DUPLICATE;
  if (!outcome.duplicate) {
    ++counts_.by_choice[outcome.choice];
    if (outcome.choice != bpo::v1::CHOICE_SKIP) ++counts_.labelled;
  }
  return outcome;
}

void RaterWork::DropLease() {
  lease_id_.clear();
  waiting_.clear();
  due_ = absl::Now() + heartbeat_interval_;
}

absl::Status RaterWork::KeepAlive(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (now < due_ || worker_id_.empty()) return absl::OkStatus();
  // Retry soon when the coordinator does not answer.
  due_ = now + std::min(heartbeat_interval_, lease_span_ / 3);
  if (!lease_id_.empty()) {
    bpo::v1::ExtendLeaseRequest request;
    request.set_worker_id(worker_id_);
    request.set_lease_id(lease_id_);
    SetDuration(options_.lease_duration, request.mutable_extend_by());
    absl::StatusOr<bpo::v1::ExtendLeaseResponse> extended = Call<bpo::v1::ExtendLeaseResponse>(
        *stubs_, "AnnotationQueue.ExtendLease", request,
        [this](auto* c, const auto& r, auto* o) { return stubs_->queue->ExtendLease(c, r, o); });
    if (extended.ok()) {
      due_ = now + lease_span_ / 3;
      return absl::OkStatus();
    }
    if (extended.status().code() != absl::StatusCode::kNotFound) return extended.status();
    // The lease lapsed: the pairs not yet shown went back to the queue. The
    // one on screen may still be labelled if nobody else took it.
    lease_id_.clear();
    waiting_.clear();
    return extended.status();
  }
  bpo::v1::HeartbeatRequest request;
  request.set_worker_id(worker_id_);
  absl::StatusOr<bpo::v1::HeartbeatResponse> beat = Call<bpo::v1::HeartbeatResponse>(
      *stubs_, "Coordinator.Heartbeat", request,
      [this](auto* c, const auto& r, auto* o) { return stubs_->coordinator->Heartbeat(c, r, o); });
  if (beat.status().code() == absl::StatusCode::kNotFound) return RegisterLocked();
  if (beat.ok()) due_ = now + heartbeat_interval_;
  return beat.status();
}

absl::Time RaterWork::due() const {
  absl::MutexLock lock(&mu_);
  return due_;
}

void RaterWork::Touch(absl::Time now) {
  const int64_t us = absl::ToUnixMicros(now);
  int64_t seen = last_seen_us_.load(std::memory_order_relaxed);
  while (seen < us && !last_seen_us_.compare_exchange_weak(seen, us, std::memory_order_relaxed)) {
  }
}

absl::Time RaterWork::last_seen() const {
  return absl::FromUnixMicros(last_seen_us_.load(std::memory_order_relaxed));
}

RaterWork::Counts RaterWork::counts() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

}  // namespace bpo::annotator
