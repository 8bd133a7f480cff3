// RunStore: the work queues (prompts, labels) and the learner's feed.
#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/stable_hash.h"
#include "common/status_macros.h"
#include "coordinator/run_store.h"
#include "coordinator/run_store_internal.h"

namespace bpo::coordinator {
namespace {

using bpo::v1::ItemStatus;

using internal::DurationMicros;
using internal::kLabelLease;
using internal::kPromptLease;
using internal::Serialize;
using internal::ToTimestamp;

constexpr int kMaxItemsPerLease = 4096;
// How long a worker with nothing to do waits before asking again. Each poll
// is one short read transaction; the wait is what a phase hand-off costs.
constexpr int64_t kRetryAfterMs = 50;

ItemStatus Item(const std::string& id, ItemStatus::Outcome outcome,
                absl::StatusCode code = absl::StatusCode::kOk, std::string message = {}) {
  ItemStatus s;
  s.set_id(id);
  s.set_outcome(outcome);
  s.set_code(static_cast<int32_t>(code));
  s.set_message(std::move(message));
  return s;
}

ItemStatus Rejected(const std::string& id, absl::StatusCode code, std::string message) {
  return Item(id, ItemStatus::REJECTED, code, std::move(message));
}

void SetRetry(google::protobuf::Duration* d, int64_t millis) {
  internal::SetDuration(d, absl::Milliseconds(millis));
}

const char* ProvenancePrefix(bpo::v1::AnnotatorKind kind) {
  switch (kind) {
    case bpo::v1::ANNOTATOR_KIND_RM:
      return "rm:";
    case bpo::v1::ANNOTATOR_KIND_RULE:
      return "rule:";
    case bpo::v1::ANNOTATOR_KIND_HUMAN:
      return "human:";
    default:
      return "?";
  }
}

// Empty when the sampled pair is well formed, else the reason.
std::string CheckSampled(const bpo::v1::SampledPair& p) {
  if (p.prompt_token_ids().empty()) return "prompt_token_ids is empty";
  for (const auto* r : {&p.a(), &p.b()}) {
    const char* which = r == &p.a() ? "a" : "b";
    if (r->token_ids().empty()) return absl::StrCat("response ", which, " has no token_ids");
    if (!r->behavior_token_logprobs().empty() &&
        r->behavior_token_logprobs_size() != r->token_ids_size()) {
      return absl::StrCat("response ", which, ": ", r->behavior_token_logprobs_size(),
                          " behavior_token_logprobs for ", r->token_ids_size(), " token_ids");
    }
  }
  return {};
}

}  // namespace

absl::StatusOr<bpo::v1::LeasePromptsResponse> RunStore::LeasePrompts(
    const bpo::v1::LeasePromptsRequest& request) {
  absl::MutexLock lock(&mu_);
  bpo::v1::LeasePromptsResponse response;
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_RETURN_IF_ERROR(FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_ACTOR).status());
    BPO_RETURN_IF_ERROR(TouchWorker(request.worker_id()));
    BPO_RETURN_IF_ERROR(ExpireLocked().status());
    BPO_ASSIGN_OR_RETURN(int64_t newest, NewestSnapshot());
    const int limit = std::clamp(request.max_prompts(), 1, kMaxItemsPerLease);
    // One fixed group (AddGroups): the oldest waiting pair's, in seq order.
    BPO_ASSIGN_OR_RETURN(
        Statement * pick,
        db_->Prepare("SELECT seq, pair_id, prompt_idx FROM pairs WHERE state = 0 AND "
                     "COALESCE(grp, seq) = (SELECT COALESCE(grp, seq) FROM pairs WHERE state = 0 "
                     "ORDER BY phase, seq LIMIT 1) ORDER BY seq LIMIT ?"));
    pick->Bind(1, static_cast<int64_t>(limit));
    std::vector<std::tuple<int64_t, std::string, int64_t>> rows;
    while (newest >= 0) {
      BPO_ASSIGN_OR_RETURN(bool row, pick->Step());
      if (!row) break;
      rows.emplace_back(pick->Int(0), pick->Text(1), pick->Int(2));
    }
    if (rows.empty()) {
      SetRetry(response.mutable_retry_after(), kRetryAfterMs);
      return absl::OkStatus();
    }
    const int64_t deadline = NowMicros() + config_.coordinator().actor_lease_seconds() * 1000000LL;
    BPO_ASSIGN_OR_RETURN(std::string lease_id,
                         NewLeaseId(request.worker_id(), kPromptLease, deadline));
    BPO_ASSIGN_OR_RETURN(
        Statement * take,
        db_->Prepare(
            "UPDATE pairs SET state = 1, lease_id = ?, worker_id = ?, version = ? WHERE seq = ?"));
    BPO_ASSIGN_OR_RETURN(Statement * prompt,
                         db_->Prepare("SELECT prompt FROM prompts WHERE idx = ?"));
    for (const auto& [seq, pair_id, idx] : rows) {
      BPO_RETURN_IF_ERROR(take->Reset()
                              .Bind(1, lease_id)
                              .Bind(2, request.worker_id())
                              .Bind(3, newest)
                              .Bind(4, seq)
                              .Run());
      prompt->Reset().Bind(1, idx);
      BPO_RETURN_IF_ERROR(prompt->Step().status());
      auto* work = response.add_work();
      work->set_pair_id(pair_id);
      work->mutable_prompt()->ParseFromString(prompt->Text(0));
    }
    response.mutable_lease()->set_lease_id(lease_id);
    *response.mutable_lease()->mutable_deadline() = ToTimestamp(deadline);
    response.set_snapshot_version(static_cast<uint64_t>(newest));
    BPO_ASSIGN_OR_RETURN(
        Statement * snap,
        db_->Prepare("SELECT info, address, path FROM snapshots WHERE version = ?"));
    snap->Bind(1, newest);
    BPO_RETURN_IF_ERROR(snap->Step().status());
    response.mutable_snapshot()->ParseFromString(snap->Text(0));
    response.set_snapshot_address(snap->Text(1));
    response.set_snapshot_path(snap->Text(2));
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<bpo::v1::SubmitPairsResponse> RunStore::SubmitPairs(
    const bpo::v1::SubmitPairsRequest& request) {
  absl::MutexLock lock(&mu_);
  bpo::v1::SubmitPairsResponse response;
  const bool async = config_.schedule().mode() == bpo::v1::ScheduleConfig::ASYNC;
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    response.clear_results();
    BPO_RETURN_IF_ERROR(FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_ACTOR).status());
    BPO_RETURN_IF_ERROR(TouchWorker(request.worker_id()));
    BPO_ASSIGN_OR_RETURN(int64_t newest, NewestSnapshot());
    BPO_ASSIGN_OR_RETURN(
        Statement * find,
        db_->Prepare(
            "SELECT seq, state, lease_id, worker_id, version, phase, prompt_idx FROM pairs "
            "WHERE pair_id = ?"));
    // The pair's row, or why this worker may not submit it (the ItemStatus).
    struct Row {
      int64_t seq, state, version, phase, prompt_idx;
    };
    auto check = [&](const std::string& pair_id, std::optional<uint64_t> version,
                     Row* out) -> std::optional<ItemStatus> {
      find->Reset().Bind(1, pair_id);
      absl::StatusOr<bool> row = find->Step();
      if (!row.ok() || !*row) {
        return Rejected(
            pair_id, absl::StatusCode::kNotFound,
            absl::StrCat("unknown pair_id '", pair_id, "' in run '", config_.run_id(), "'"));
      }
      *out = {find->Int(0), find->Int(1), find->IsNull(4) ? -1 : find->Int(4), find->Int(5),
              find->Int(6)};
      const auto state = static_cast<PairState>(out->state);
      if (state != PairState::kQueued && state != PairState::kPromptLeased) {
        return Item(pair_id, ItemStatus::DUPLICATE, absl::StatusCode::kAlreadyExists,
                    absl::StrCat("already submitted (", PairStateName(state), ")"));
      }
      if (state == PairState::kPromptLeased &&
          (find->Text(2) != request.lease_id() || find->Text(3) != request.worker_id())) {
        return Rejected(pair_id, absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("pair '", pair_id, "' is not leased to worker '",
                                     request.worker_id(), "' under lease '", request.lease_id(),
                                     "' (the lease expired and the prompt went to another actor)"));
      }
      if (!version.has_value()) return std::nullopt;
      // A late submission of an expired but not re-leased prompt is kept when
      // its behavior version is still acceptable for its phase.
      const int64_t v = static_cast<int64_t>(*version);
      const int64_t wanted = state == PairState::kPromptLeased ? out->version : newest;
      const bool ok =
          state == PairState::kPromptLeased
              ? v == wanted
              : (async ? (v <= newest && out->phase - v <= config_.schedule().max_staleness())
                       : v == out->phase);
      if (!ok) {
        return Rejected(pair_id, absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("behavior_version ", v, " is not the snapshot pair '", pair_id,
                                     "' was leased with (", wanted, ")"));
      }
      return std::nullopt;
    };

    BPO_ASSIGN_OR_RETURN(
        Statement * accept,
        db_->Prepare(
            "UPDATE pairs SET state = 2, sampled = ?, version = ?, lease_id = NULL, worker_id = ? "
            "WHERE seq = ?"));
    BPO_ASSIGN_OR_RETURN(Statement * prompt,
                         db_->Prepare("SELECT prompt FROM prompts WHERE idx = ?"));
    std::set<std::string> seen;
    for (const bpo::v1::SampledPair& pair : request.pairs()) {
      Row row{};
      if (!seen.insert(pair.pair_id()).second) {
        response.mutable_results()->Add(Item(pair.pair_id(), ItemStatus::DUPLICATE,
                                             absl::StatusCode::kAlreadyExists,
                                             "listed twice in this request"));
        ++duplicates_;
        continue;
      }
      if (!pair.run_id().empty() && pair.run_id() != config_.run_id()) {
        response.mutable_results()->Add(
            Rejected(pair.pair_id(), absl::StatusCode::kInvalidArgument,
                     absl::StrCat("run_id '", pair.run_id(), "' is not this run ('",
                                  config_.run_id(), "')")));
        ++rejected_;
        continue;
      }
      if (auto bad = check(pair.pair_id(), pair.behavior_version(), &row)) {
        (bad->outcome() == ItemStatus::DUPLICATE ? duplicates_ : rejected_)++;
        response.mutable_results()->Add(std::move(*bad));
        continue;
      }
      if (std::string why = CheckSampled(pair); !why.empty()) {
        ++rejected_;
        response.mutable_results()->Add(
            Rejected(pair.pair_id(), absl::StatusCode::kInvalidArgument,
                     absl::StrCat("pair '", pair.pair_id(), "': ", why)));
        continue;
      }
      bpo::v1::SampledPair stored = pair;
      stored.set_run_id(config_.run_id());
      stored.set_actor_id(request.worker_id());
      prompt->Reset().Bind(1, row.prompt_idx);
      BPO_RETURN_IF_ERROR(prompt->Step().status());
      stored.mutable_prompt()->ParseFromString(prompt->Text(0));
      if (!stored.has_sampled_at()) *stored.mutable_sampled_at() = ToTimestamp(NowMicros());
      BPO_RETURN_IF_ERROR(accept->Reset()
                              .BindBlob(1, Serialize(stored))
                              .Bind(2, static_cast<int64_t>(pair.behavior_version()))
                              .Bind(3, request.worker_id())
                              .Bind(4, row.seq)
                              .Run());
      response.mutable_results()->Add(Item(pair.pair_id(), ItemStatus::ACCEPTED));
    }
    for (const std::string& pair_id : request.dropped_pair_ids()) {
      Row row{};
      if (!seen.insert(pair_id).second) {
        response.mutable_results()->Add(Item(pair_id, ItemStatus::DUPLICATE,
                                             absl::StatusCode::kAlreadyExists,
                                             "listed twice in this request"));
        continue;
      }
      if (auto bad = check(pair_id, std::nullopt, &row)) {
        response.mutable_results()->Add(std::move(*bad));
        continue;
      }
      // A drop creates a replacement pair: only a prompt this worker holds
      // under this lease may be reported dropped.
      if (static_cast<PairState>(row.state) != PairState::kPromptLeased) {
        ++rejected_;
        response.mutable_results()->Add(
            Rejected(pair_id, absl::StatusCode::kFailedPrecondition,
                     absl::StrCat("pair '", pair_id, "' is not leased to worker '",
                                  request.worker_id(), "' under lease '", request.lease_id(),
                                  "': only a held prompt can be reported dropped")));
        continue;
      }
      BPO_RETURN_IF_ERROR(
          DropAndReplace(row.seq, static_cast<int>(row.phase), "identical responses"));
      response.mutable_results()->Add(Item(pair_id, ItemStatus::ACCEPTED));
    }
    return ReleasePromptLease(request.lease_id(), request.worker_id());
  }));
  return response;
}

absl::StatusOr<bpo::v1::ReturnPromptsResponse> RunStore::ReturnPrompts(
    const bpo::v1::ReturnPromptsRequest& request) {
  absl::MutexLock lock(&mu_);
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_RETURN_IF_ERROR(FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_ACTOR).status());
    BPO_RETURN_IF_ERROR(CheckLeaseOwner(request.lease_id(), request.worker_id(), kPromptLease));
    BPO_ASSIGN_OR_RETURN(
        Statement * back,
        db_->Prepare(
            "UPDATE pairs SET state = 0, lease_id = NULL, worker_id = NULL, version = NULL "
            "WHERE pair_id = ? AND state = 1 AND lease_id = ? AND worker_id = ?"));
    for (const std::string& id : request.pair_ids()) {
      BPO_RETURN_IF_ERROR(
          back->Reset().Bind(1, id).Bind(2, request.lease_id()).Bind(3, request.worker_id()).Run());
    }
    return ReleasePromptLease(request.lease_id(), request.worker_id());
  }));
  return bpo::v1::ReturnPromptsResponse();
}

absl::StatusOr<bpo::v1::LeasePairsResponse> RunStore::LeasePairs(
    const bpo::v1::LeasePairsRequest& request) {
  absl::MutexLock lock(&mu_);
  bpo::v1::LeasePairsResponse response;
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_RETURN_IF_ERROR(FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_ANNOTATOR).status());
    BPO_RETURN_IF_ERROR(TouchWorker(request.worker_id()));
    BPO_RETURN_IF_ERROR(ExpireLocked().status());
    const int limit = std::clamp(request.max_pairs(), 1, kMaxItemsPerLease);
    // Pairs this worker may label; a lease holds one sampling group's (the
    // oldest such pair's), so that the annotator's padded batches, and
    // with them its scores, never depend on timing.
    constexpr char kOpen[] =
        "p.state = 2 "
        "AND (SELECT COUNT(*) FROM labels l WHERE l.seq = p.seq AND l.choice != 4) + "
        "    (SELECT COUNT(*) FROM label_leases ll WHERE ll.seq = p.seq) < ?1 "
        "AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.seq = p.seq AND l.worker_id = ?2) "
        "AND NOT EXISTS (SELECT 1 FROM label_leases ll WHERE ll.seq = p.seq AND "
        "ll.worker_id = ?2)";
    BPO_ASSIGN_OR_RETURN(Statement * pick,
                         db_->Prepare(absl::StrCat(
                             "SELECT p.seq, p.sampled FROM pairs p WHERE ", kOpen,
                             " AND COALESCE(p.grp, p.seq) = (SELECT COALESCE(p.grp, p.seq) "
                             "FROM pairs p WHERE ",
                             kOpen, " ORDER BY p.phase, p.seq LIMIT 1) ORDER BY p.seq LIMIT ?3")));
    pick->Bind(1, static_cast<int64_t>(config_.annotation().raters_per_pair()))
        .Bind(2, request.worker_id())
        .Bind(3, static_cast<int64_t>(limit));
    std::vector<std::pair<int64_t, std::string>> rows;
    while (true) {
      BPO_ASSIGN_OR_RETURN(bool row, pick->Step());
      if (!row) break;
      rows.emplace_back(pick->Int(0), pick->Text(1));
    }
    if (rows.empty()) {
      SetRetry(response.mutable_retry_after(), kRetryAfterMs);
      return absl::OkStatus();
    }
    const int64_t cap = config_.annotation().lease_seconds() * 1000000LL;
    const int64_t asked = DurationMicros(request.lease_duration());
    const int64_t deadline = NowMicros() + (asked > 0 ? std::min(asked, cap) : cap);
    BPO_ASSIGN_OR_RETURN(std::string lease_id,
                         NewLeaseId(request.worker_id(), kLabelLease, deadline));
    BPO_ASSIGN_OR_RETURN(
        Statement * hold,
        db_->Prepare("INSERT INTO label_leases(seq, worker_id, lease_id) VALUES(?, ?, ?)"));
    for (const auto& [seq, blob] : rows) {
      BPO_RETURN_IF_ERROR(
          hold->Reset().Bind(1, seq).Bind(2, request.worker_id()).Bind(3, lease_id).Run());
      response.add_pairs()->ParseFromString(blob);
    }
    response.mutable_lease()->set_lease_id(lease_id);
    *response.mutable_lease()->mutable_deadline() = ToTimestamp(deadline);
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<bpo::v1::ExtendLeaseResponse> RunStore::ExtendLease(
    const bpo::v1::ExtendLeaseRequest& request) {
  absl::MutexLock lock(&mu_);
  bpo::v1::ExtendLeaseResponse response;
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_RETURN_IF_ERROR(FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_UNSPECIFIED).status());
    BPO_RETURN_IF_ERROR(TouchWorker(request.worker_id()));
    BPO_RETURN_IF_ERROR(ExpireLocked().status());
    BPO_ASSIGN_OR_RETURN(
        Statement * get,
        db_->Prepare("SELECT kind FROM leases WHERE lease_id = ? AND worker_id = ?"));
    get->Bind(1, request.lease_id()).Bind(2, request.worker_id());
    BPO_ASSIGN_OR_RETURN(bool row, get->Step());
    if (!row) {
      return absl::NotFoundError(absl::StrCat(
          "lease '", request.lease_id(), "' of worker '", request.worker_id(),
          "' is not held: it expired (its work went back to the queue) or was never granted"));
    }
    const int64_t cap = (get->Int(0) == kPromptLease ? config_.coordinator().actor_lease_seconds()
                                                     : config_.annotation().lease_seconds()) *
                        1000000LL;
    const int64_t asked = DurationMicros(request.extend_by());
    const int64_t deadline = NowMicros() + (asked > 0 ? std::min(asked, cap) : cap);
    BPO_ASSIGN_OR_RETURN(Statement * up,
                         db_->Prepare("UPDATE leases SET deadline_us = ? WHERE lease_id = ?"));
    BPO_RETURN_IF_ERROR(up->Bind(1, deadline).Bind(2, request.lease_id()).Run());
    response.mutable_lease()->set_lease_id(request.lease_id());
    *response.mutable_lease()->mutable_deadline() = ToTimestamp(deadline);
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<bpo::v1::SubmitLabelsResponse> RunStore::SubmitLabels(
    const bpo::v1::SubmitLabelsRequest& request) {
  absl::MutexLock lock(&mu_);
  bpo::v1::SubmitLabelsResponse response;
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    response.clear_results();
    BPO_ASSIGN_OR_RETURN(Worker worker,
                         FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_ANNOTATOR));
    BPO_RETURN_IF_ERROR(TouchWorker(request.worker_id()));
    const std::string prefix = ProvenancePrefix(worker.info.annotator_kind());
    const int64_t raters = config_.annotation().raters_per_pair();
    BPO_ASSIGN_OR_RETURN(
        Statement * find,
        db_->Prepare(
            "SELECT seq, state, phase, "
            "(SELECT COUNT(*) FROM labels l WHERE l.seq = p.seq AND l.worker_id = ?), "
            "(SELECT COUNT(*) FROM label_leases ll WHERE ll.seq = p.seq AND ll.worker_id = ?), "
            "(SELECT COUNT(*) FROM labels l WHERE l.seq = p.seq AND l.choice != 4), "
            "(SELECT COUNT(*) FROM label_leases ll WHERE ll.seq = p.seq) "
            "FROM pairs p WHERE pair_id = ?"));
    BPO_ASSIGN_OR_RETURN(
        Statement * add,
        db_->Prepare("INSERT INTO labels(seq, worker_id, choice, label) VALUES(?, ?, ?, ?)"));
    BPO_ASSIGN_OR_RETURN(Statement * release,
                         db_->Prepare("DELETE FROM label_leases WHERE seq = ? AND worker_id = ?"));
    for (const bpo::v1::Label& label : request.labels()) {
      const std::string& id = label.pair_id();
      find->Reset().Bind(1, request.worker_id()).Bind(2, request.worker_id()).Bind(3, id);
      BPO_ASSIGN_OR_RETURN(bool row, find->Step());
      auto reject = [&](absl::StatusCode code, std::string why) {
        ++rejected_;
        response.mutable_results()->Add(Rejected(id, code, std::move(why)));
      };
      if (!row) {
        reject(absl::StatusCode::kNotFound,
               absl::StrCat("unknown pair_id '", id, "' in run '", config_.run_id(), "'"));
        continue;
      }
      const int64_t seq = find->Int(0), phase = find->Int(2);
      const auto state = static_cast<PairState>(find->Int(1));
      const bool labelled_by_me = find->Int(3) > 0, leased_to_me = find->Int(4) > 0;
      const int64_t labels = find->Int(5);
      if (labelled_by_me) {
        ++duplicates_;
        response.mutable_results()->Add(Item(id, ItemStatus::DUPLICATE,
                                             absl::StatusCode::kAlreadyExists,
                                             "this worker already labelled the pair"));
        continue;
      }
      if (label.choice() == bpo::v1::CHOICE_UNSPECIFIED ||
          !bpo::v1::Choice_IsValid(label.choice())) {
        reject(absl::StatusCode::kInvalidArgument,
               absl::StrCat("pair '", id, "': choice must be A, B, TIE or SKIP"));
        continue;
      }
      if (!absl::StartsWith(label.provenance(), prefix) ||
          label.provenance().size() <= prefix.size()) {
        reject(
            absl::StatusCode::kInvalidArgument,
            absl::StrCat("pair '", id, "': provenance '", label.provenance(), "' must be '", prefix,
                         "<name>' for a ",
                         bpo::v1::AnnotatorKind_Name(worker.info.annotator_kind()), " annotator"));
        continue;
      }
      if (state != PairState::kSampled) {
        reject(absl::StatusCode::kFailedPrecondition,
               absl::StrCat("pair '", id, "' is ", PairStateName(state), ", not awaiting labels"));
        continue;
      }
      // Only a pair leased to this worker takes its label: a label for a
      // pair never leased to it (or whose lease expired) is refused, so no
      // annotator labels pairs it was not given.
      if (!leased_to_me) {
        reject(absl::StatusCode::kFailedPrecondition,
               absl::StrCat("pair '", id, "' is not leased to worker '", request.worker_id(),
                            "' (never leased to it, or the lease expired)"));
        continue;
      }
      bpo::v1::Label stored = label;
      if (!stored.has_labeled_at()) *stored.mutable_labeled_at() = ToTimestamp(NowMicros());
      BPO_RETURN_IF_ERROR(add->Reset()
                              .Bind(1, seq)
                              .Bind(2, request.worker_id())
                              .Bind(3, static_cast<int64_t>(label.choice()))
                              .BindBlob(4, Serialize(stored))
                              .Run());
      BPO_RETURN_IF_ERROR(release->Reset().Bind(1, seq).Bind(2, request.worker_id()).Run());
      response.mutable_results()->Add(Item(id, ItemStatus::ACCEPTED));
      if (label.choice() != bpo::v1::CHOICE_SKIP && labels + 1 >= raters) {
        BPO_RETURN_IF_ERROR(Resolve(seq, id, static_cast<int>(phase)));
      }
    }
    BPO_ASSIGN_OR_RETURN(
        Statement * done,
        db_->Prepare("DELETE FROM leases WHERE lease_id = ? AND worker_id = ? AND kind = ? AND "
                     "NOT EXISTS (SELECT 1 FROM label_leases WHERE lease_id = ?)"));
    return done->Bind(1, request.lease_id())
        .Bind(2, request.worker_id())
        .Bind(3, static_cast<int64_t>(kLabelLease))
        .Bind(4, request.lease_id())
        .Run();
  }));
  return response;
}

absl::Status RunStore::CheckLeaseOwner(const std::string& lease_id, const std::string& worker_id,
                                       int kind) {
  BPO_ASSIGN_OR_RETURN(Statement * get,
                       db_->Prepare("SELECT worker_id, kind FROM leases WHERE lease_id = ?"));
  get->Bind(1, lease_id);
  BPO_ASSIGN_OR_RETURN(bool row, get->Step());
  if (!row) return absl::OkStatus();  // expired or released: nothing to act on
  if (get->Text(0) != worker_id || get->Int(1) != kind) {
    return absl::PermissionDeniedError(absl::StrCat("lease '", lease_id, "' is not a ",
                                                    kind == kPromptLease ? "prompt" : "label",
                                                    " lease of worker '", worker_id, "'"));
  }
  return absl::OkStatus();
}

absl::Status RunStore::ReleasePromptLease(const std::string& lease_id,
                                          const std::string& worker_id) {
  BPO_ASSIGN_OR_RETURN(
      Statement * done,
      db_->Prepare("DELETE FROM leases WHERE lease_id = ? AND worker_id = ? AND kind = ? AND "
                   "NOT EXISTS (SELECT 1 FROM pairs WHERE lease_id = ? AND state = 1)"));
  return done->Bind(1, lease_id)
      .Bind(2, worker_id)
      .Bind(3, static_cast<int64_t>(kPromptLease))
      .Bind(4, lease_id)
      .Run();
}

absl::Status RunStore::Resolve(int64_t seq, const std::string& pair_id, int phase) {
  BPO_ASSIGN_OR_RETURN(
      Statement * all,
      db_->Prepare(
          "SELECT choice, label FROM labels WHERE seq = ? AND choice != 4 ORDER BY rowid"));
  all->Bind(1, seq);
  std::vector<bpo::v1::Label> labels;
  while (true) {
    BPO_ASSIGN_OR_RETURN(bool row, all->Step());
    if (!row) break;
    labels.emplace_back().ParseFromString(all->Text(1));
  }
  bpo::v1::Label final_label = labels.front();
  bpo::v1::Choice choice = labels.front().choice();
  for (const auto& l : labels) {
    if (l.choice() != choice) choice = bpo::v1::CHOICE_TIE;  // raters disagree
  }
  if (labels.size() > 1) {
    std::string provenance;
    for (const auto& l : labels)
      absl::StrAppend(&provenance, provenance.empty() ? "" : "+", l.provenance());
    final_label.set_provenance(provenance);
  }
  if (choice == bpo::v1::CHOICE_TIE) {
    if (config_.annotation().ties() == bpo::v1::AnnotationConfig::SKIP) {
      return DropAndReplace(seq, phase, "tie");
    }
    const uint64_t h = StableCombine({config_.seeds().global(), StableHash(pair_id)});
    choice = (h & 1) ? bpo::v1::CHOICE_A : bpo::v1::CHOICE_B;
  }
  final_label.set_choice(choice);
  BPO_ASSIGN_OR_RETURN(Statement * up,
                       db_->Prepare("UPDATE pairs SET state = 3, label = ? WHERE seq = ?"));
  return up->BindBlob(1, Serialize(final_label)).Bind(2, seq).Run();
}

absl::Status RunStore::DropAndReplace(int64_t seq, int phase, const std::string& why) {
  BPO_ASSIGN_OR_RETURN(
      Statement * drop,
      db_->Prepare("UPDATE pairs SET state = 6, note = ?, lease_id = NULL WHERE seq = ?"));
  BPO_RETURN_IF_ERROR(drop->Bind(1, why).Bind(2, seq).Run());
  BPO_ASSIGN_OR_RETURN(Statement * release, db_->Prepare("DELETE FROM label_leases WHERE seq = ?"));
  BPO_RETURN_IF_ERROR(release->Bind(1, seq).Run());
  // Strict: replaced by Replenish once the phase's other pairs are in.
  if (config_.schedule().mode() == bpo::v1::ScheduleConfig::STRICT) return absl::OkStatus();
  return AddPair(phase).status();
}

absl::Status RunStore::Replenish(int64_t phase) {
  BPO_ASSIGN_OR_RETURN(
      Statement * count,
      db_->Prepare("SELECT SUM(state IN (0, 1, 2)), SUM(state IN (3, 4, 5)) FROM pairs "
                   "WHERE phase = ?"));
  count->Bind(1, phase);
  BPO_RETURN_IF_ERROR(count->Step().status());
  const int64_t pending = count->IsNull(0) ? 0 : count->Int(0);
  const int64_t live = count->IsNull(1) ? 0 : count->Int(1);
  if (pending > 0 || live >= pairs_per_phase_) return absl::OkStatus();
  return AddGroups(static_cast<int>(phase), pairs_per_phase_ - live);
}

absl::StatusOr<bpo::v1::FetchBatchResponse> RunStore::BatchSlice(int64_t step, int rank,
                                                                 int world) {
  const int64_t per_rank = config_.schedule().batch_size() / world;
  BPO_ASSIGN_OR_RETURN(
      Statement * st,
      db_->Prepare("SELECT sampled, label, version FROM pairs WHERE step = ? ORDER BY pos"));
  st->Bind(1, step);
  bpo::v1::FetchBatchResponse response;
  response.set_step(step);
  int64_t i = 0, oldest = -1;
  while (true) {
    BPO_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    oldest = oldest < 0 ? st->Int(2) : std::min(oldest, st->Int(2));
    if (i >= rank * per_rank && i < (rank + 1) * per_rank) {
      auto* p = response.add_pairs();
      p->mutable_pair()->ParseFromString(st->Text(0));
      p->mutable_label()->ParseFromString(st->Text(1));
    }
    ++i;
  }
  response.set_staleness(step / steps_per_phase_ - oldest);
  return response;
}

absl::StatusOr<bpo::v1::FetchBatchResponse> RunStore::FetchBatch(
    const bpo::v1::FetchBatchRequest& request) {
  const auto& sch = config_.schedule();
  const int world = config_.learner().world_size();
  if (request.world_size() != world || request.rank() < 0 || request.rank() >= world) {
    return absl::FailedPreconditionError(absl::StrCat(
        "FetchBatch from rank ", request.rank(), " of world size ", request.world_size(), "; run '",
        config_.run_id(), "' has learner.world_size = ", world));
  }
  if (request.step() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("step must be >= 0, got ", request.step()));
  }
  absl::MutexLock lock(&mu_);
  bpo::v1::FetchBatchResponse response;
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_RETURN_IF_ERROR(FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_LEARNER).status());
    BPO_RETURN_IF_ERROR(TouchWorker(request.worker_id()));
    BPO_ASSIGN_OR_RETURN(int64_t committed, StepsCommitted());
    BPO_ASSIGN_OR_RETURN(int64_t formed, BatchesFormed());
    const int64_t step = request.step();
    response.set_step(step);
    if (step >= sch.total_steps()) {
      if (committed >= sch.total_steps()) {
        response.set_done(true);
        return absl::OkStatus();
      }
      return absl::FailedPreconditionError(
          absl::StrCat("step ", step, " is beyond the run's T = ", sch.total_steps(), " steps"));
    }
    if (step < formed) {
      BPO_ASSIGN_OR_RETURN(response, BatchSlice(step, request.rank(), world));
      return absl::OkStatus();
    }
    if (step > formed) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the batch of step ", formed, " is not formed yet; step ", step, " cannot be"));
    }
    const int64_t phase = step / steps_per_phase_;
    BPO_ASSIGN_OR_RETURN(Statement * snap,
                         db_->Prepare("SELECT 1 FROM snapshots WHERE version = ?"));
    snap->Bind(1, phase);
    BPO_ASSIGN_OR_RETURN(bool published, snap->Step());
    if (!published) {
      if (request.rank() == 0) {
        response.set_publish_snapshot(true);
        response.set_publish_version(static_cast<uint64_t>(phase));
      }
      SetRetry(response.mutable_retry_after(), kRetryAfterMs);
      return absl::OkStatus();
    }
    if (sch.mode() == bpo::v1::ScheduleConfig::STRICT) {
      BPO_RETURN_IF_ERROR(Replenish(phase));
      BPO_ASSIGN_OR_RETURN(
          Statement * pending,
          db_->Prepare("SELECT COUNT(*) FROM pairs WHERE phase = ? AND state IN (0, 1, 2)"));
      pending->Bind(1, phase);
      BPO_RETURN_IF_ERROR(pending->Step().status());
      if (pending->Int(0) > 0) {
        SetRetry(response.mutable_retry_after(), kRetryAfterMs);
        return absl::OkStatus();
      }
    }
    BPO_ASSIGN_OR_RETURN(Statement * pick,
                         db_->Prepare("SELECT seq, version, sampled FROM pairs WHERE phase = ? "
                                      "AND state = 3 ORDER BY seq LIMIT ?"));
    pick->Bind(1, phase).Bind(2, static_cast<int64_t>(sch.batch_size()));
    std::vector<int64_t> seqs;
    std::vector<std::pair<int64_t, std::string>> quarantine;
    int64_t oldest = phase;
    while (true) {
      BPO_ASSIGN_OR_RETURN(bool row, pick->Step());
      if (!row) break;
      if (pair_check_) {
        bpo::v1::SampledPair pair;
        std::string why = pair.ParseFromString(pick->Text(2)) ? pair_check_(pair)
                                                              : "the stored pair does not parse";
        if (!why.empty()) {
          quarantine.emplace_back(pick->Int(0), std::move(why));
          continue;
        }
      }
      seqs.push_back(pick->Int(0));
      oldest = std::min(oldest, pick->Int(1));
    }
    for (const auto& [seq, why] : quarantine) {
      BPO_LOG(WARNING) << "pair #" << seq << " of phase " << phase
                       << " quarantined and replaced: " << why;
      BPO_RETURN_IF_ERROR(DropAndReplace(seq, static_cast<int>(phase), "quarantined: " + why));
    }
    if (!quarantine.empty() && sch.mode() == bpo::v1::ScheduleConfig::STRICT) {
      BPO_RETURN_IF_ERROR(Replenish(phase));
    }
    if (static_cast<int64_t>(seqs.size()) < sch.batch_size()) {
      SetRetry(response.mutable_retry_after(), kRetryAfterMs);
      return absl::OkStatus();
    }
    BPO_ASSIGN_OR_RETURN(
        Statement * take,
        db_->Prepare("UPDATE pairs SET state = 4, step = ?, pos = ? WHERE seq = ?"));
    for (size_t i = 0; i < seqs.size(); ++i) {
      BPO_RETURN_IF_ERROR(
          take->Reset().Bind(1, step).Bind(2, static_cast<int64_t>(i)).Bind(3, seqs[i]).Run());
    }
    BPO_ASSIGN_OR_RETURN(int64_t worst, GetCounter("max_staleness"));
    if (phase - oldest > worst) BPO_RETURN_IF_ERROR(SetCounter("max_staleness", phase - oldest));
    BPO_ASSIGN_OR_RETURN(response, BatchSlice(step, request.rank(), world));
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<bpo::v1::CommitStepResponse> RunStore::CommitStep(
    const bpo::v1::CommitStepRequest& request) {
  absl::MutexLock lock(&mu_);
  bpo::v1::CommitStepResponse response;
  const int64_t total = config_.schedule().total_steps();
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_RETURN_IF_ERROR(FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_LEARNER).status());
    BPO_RETURN_IF_ERROR(TouchWorker(request.worker_id()));
    BPO_ASSIGN_OR_RETURN(int64_t committed, StepsCommitted());
    const int64_t step = request.step();
    if (step < committed) {  // a retry: already recorded
      response.set_state(committed >= total ? bpo::v1::RUN_STATE_DONE : bpo::v1::RUN_STATE_RUNNING);
      return absl::OkStatus();
    }
    if (step > committed) {
      return absl::FailedPreconditionError(absl::StrCat("cannot commit step ", step, ": step ",
                                                        committed, " is the next to commit"));
    }
    BPO_ASSIGN_OR_RETURN(Statement * ids, db_->Prepare("SELECT pair_id FROM pairs WHERE step = ?"));
    ids->Bind(1, step);
    std::set<std::string> batch;
    while (true) {
      BPO_ASSIGN_OR_RETURN(bool row, ids->Step());
      if (!row) break;
      batch.insert(ids->Text(0));
    }
    if (batch.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot commit step ", step, ": its batch was never fetched"));
    }
    if (!request.pair_ids().empty()) {
      const std::set<std::string> given(request.pair_ids().begin(), request.pair_ids().end());
      if (given != batch) {
        return absl::InvalidArgumentError(absl::StrCat("CommitStep ", step, " names ", given.size(),
                                                       " pairs that are not the step's batch of ",
                                                       batch.size()));
      }
    }
    BPO_ASSIGN_OR_RETURN(Statement * consume,
                         db_->Prepare("UPDATE pairs SET state = 5 WHERE step = ? AND state = 4"));
    BPO_RETURN_IF_ERROR(consume->Bind(1, step).Run());
    BPO_ASSIGN_OR_RETURN(
        Statement * ins,
        db_->Prepare("INSERT INTO steps(step, committed_us, request) VALUES(?, ?, ?)"));
    BPO_RETURN_IF_ERROR(
        ins->Bind(1, step).Bind(2, NowMicros()).BindBlob(3, Serialize(request)).Run());
    response.set_state(step + 1 >= total ? bpo::v1::RUN_STATE_DONE : bpo::v1::RUN_STATE_RUNNING);
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<bpo::v1::ReportSnapshotResponse> RunStore::ReportSnapshot(
    const bpo::v1::ReportSnapshotRequest& request) {
  const bpo::v1::SnapshotInfo& info = request.snapshot();
  if (info.sha256().size() != 64 || info.size_bytes() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot ", info.version(), ": needs a 64-hex-digit sha256 and a size, got '",
                     info.sha256(), "' and ", info.size_bytes(), " bytes"));
  }
  if (request.serve_address().empty() && request.path().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot ", info.version(), ": no serve_address or path to fetch it from"));
  }
  absl::MutexLock lock(&mu_);
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_RETURN_IF_ERROR(FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_LEARNER).status());
    const int64_t v = static_cast<int64_t>(info.version());
    BPO_ASSIGN_OR_RETURN(Statement * get,
                         db_->Prepare("SELECT info FROM snapshots WHERE version = ?"));
    get->Bind(1, v);
    BPO_ASSIGN_OR_RETURN(bool held, get->Step());
    if (held) {
      bpo::v1::SnapshotInfo old;
      old.ParseFromString(get->Text(0));
      if (old.sha256() != info.sha256()) {
        return absl::AlreadyExistsError(
            absl::StrCat("snapshot ", v, " was reported with sha256 ", old.sha256(), "; now ",
                         info.sha256(), ": actors may have sampled from the first one"));
      }
      BPO_ASSIGN_OR_RETURN(
          Statement * up,
          db_->Prepare("UPDATE snapshots SET address = ?, path = ? WHERE version = ?"));
      return up->Bind(1, request.serve_address()).Bind(2, request.path()).Bind(3, v).Run();
    }
    BPO_ASSIGN_OR_RETURN(int64_t formed, BatchesFormed());
    const int64_t expected = formed / steps_per_phase_;
    if (v != expected || v >= config_.schedule().phases()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "snapshot ", v, " is not the one run '", config_.run_id(), "' needs next (",
          expected < config_.schedule().phases() ? absl::StrCat("version ", expected)
                                                 : std::string("none: all phases have one"),
          ")"));
    }
    BPO_ASSIGN_OR_RETURN(
        Statement * ins,
        db_->Prepare("INSERT INTO snapshots(version, info, address, path) VALUES(?, ?, ?, ?)"));
    BPO_RETURN_IF_ERROR(ins->Bind(1, v)
                            .BindBlob(2, Serialize(info))
                            .Bind(3, request.serve_address())
                            .Bind(4, request.path())
                            .Run());
    return OpenPhasesUpTo(v);
  }));
  return bpo::v1::ReportSnapshotResponse();
}

}  // namespace bpo::coordinator
