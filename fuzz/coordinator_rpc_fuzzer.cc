// libFuzzer target: the coordinator's RPC handlers, in process. The input is a
// serialized bpo.fuzz.RpcSequence (fuzz/rpc_sequence.proto); each call is
// validated and run on the store exactly as coordinator/service.cc does
// (Validate, then the RunStore method; SubmitPairs refuses pairs out of bounds
// one by one), against a fresh in-memory RunStore per input with a fake clock.
//
// Beyond "no crash": a refusal by Validate is INVALID_ARGUMENT or
// PERMISSION_DENIED; no call fails with INTERNAL, UNKNOWN or DATA_LOSS (the
// store's own invariants broke); an accepted submission sent again is never
// accepted twice; a committed step commits again; Status() and Counters()
// always answer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bpo/v1/config.pb.h"
#include "common/config.h"
#include "coordinator/run_store.h"
#include "coordinator/validation.h"
#include "rpc_sequence.pb.h"

namespace {

using bpo::coordinator::RunStore;
using bpo::coordinator::ValidationLimits;

absl::Time g_now;
bpo::v1::RunConfig* g_config = nullptr;
ValidationLimits* g_limits = nullptr;
std::vector<bpo::v1::Prompt>* g_prompts = nullptr;
bool g_verbose = false;

[[noreturn]] void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "coordinator_rpc_fuzzer: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

// A failure that means the store or the handler is broken, whatever the input.
bool IsBug(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kUnknown ||
         s.code() == absl::StatusCode::kDataLoss;
}

// Validate, then the store: BPO_ANSWER in coordinator/service.cc.
template <typename Request, typename Method>
auto Answer(RunStore* store, const Request& request, Method method)
    -> decltype((store->*method)(request)) {
  if (absl::Status s = bpo::coordinator::Validate(request, *g_limits); !s.ok()) {
    if (s.code() != absl::StatusCode::kInvalidArgument &&
        s.code() != absl::StatusCode::kPermissionDenied) {
      Fail("Validate refused with an unexpected code", s);
    }
    return s;
  }
  return (store->*method)(request);
}

// PromptQueueService::SubmitPairs: pairs out of bounds are refused one by one.
absl::StatusOr<bpo::v1::SubmitPairsResponse> SubmitPairs(RunStore* store,
                                                         const bpo::v1::SubmitPairsRequest& r) {
  if (absl::Status s = bpo::coordinator::Validate(r, *g_limits); !s.ok()) return s;
  bpo::v1::SubmitPairsRequest fit = r;
  fit.clear_pairs();
  for (const bpo::v1::SampledPair& pair : r.pairs()) {
    if (bpo::coordinator::CheckPairBounds(pair, *g_limits).empty()) *fit.add_pairs() = pair;
  }
  return store->SubmitPairs(fit);
}

template <typename Response>
void CheckNotAcceptedAgain(const absl::StatusOr<Response>& again, const char* method) {
  if (!again.ok()) {
    if (IsBug(again.status())) Fail(method, again.status());
    return;
  }
  for (const bpo::v1::ItemStatus& item : again->results()) {
    if (item.outcome() == bpo::v1::ItemStatus::ACCEPTED) {
      Fail(method,
           absl::InternalError(absl::StrCat("item '", item.id(), "' was accepted a second time")));
    }
  }
}

// BPO_FUZZ_VERBOSE=1 prints every call's outcome (to write seeds).
template <typename Response>
void Report(const char* method, const absl::StatusOr<Response>& result) {
  if (g_verbose) {
    std::fprintf(
        stderr, "%s: %s\n", method,
        result.ok() ? result->ShortDebugString().c_str() : result.status().ToString().c_str());
  }
  if (!result.ok() && IsBug(result.status())) Fail(method, result.status());
}

void Report(const char* method, const absl::StatusOr<int64_t>& result) {
  if (!result.ok() && IsBug(result.status())) Fail(method, result.status());
}

void Run(RunStore* store, const bpo::fuzz::RpcCall& call) {
  using bpo::fuzz::RpcCall;
  switch (call.request_case()) {
    case RpcCall::kRegister:
      Report("Register", Answer(store, call.register_(), &RunStore::Register));
      break;
    case RpcCall::kHeartbeat:
      Report("Heartbeat", Answer(store, call.heartbeat(), &RunStore::Heartbeat));
      break;
    case RpcCall::kGetRunStatus:
      Report("GetRunStatus", store->Status());
      break;
    case RpcCall::kLeasePrompts:
      Report("LeasePrompts", Answer(store, call.lease_prompts(), &RunStore::LeasePrompts));
      break;
    case RpcCall::kSubmitPairs: {
      auto first = SubmitPairs(store, call.submit_pairs());
      Report("SubmitPairs", first);
      if (first.ok()) CheckNotAcceptedAgain(SubmitPairs(store, call.submit_pairs()), "SubmitPairs");
      break;
    }
    case RpcCall::kReturnPrompts:
      Report("ReturnPrompts", Answer(store, call.return_prompts(), &RunStore::ReturnPrompts));
      break;
    case RpcCall::kLeasePairs:
      Report("LeasePairs", Answer(store, call.lease_pairs(), &RunStore::LeasePairs));
      break;
    case RpcCall::kExtendLease:
      Report("ExtendLease", Answer(store, call.extend_lease(), &RunStore::ExtendLease));
      break;
    case RpcCall::kSubmitLabels: {
      auto first = Answer(store, call.submit_labels(), &RunStore::SubmitLabels);
      Report("SubmitLabels", first);
      if (first.ok()) {
        CheckNotAcceptedAgain(Answer(store, call.submit_labels(), &RunStore::SubmitLabels),
                              "SubmitLabels");
      }
      break;
    }
    case RpcCall::kFetchBatch:
      Report("FetchBatch", Answer(store, call.fetch_batch(), &RunStore::FetchBatch));
      break;
    case RpcCall::kCommitStep: {
      auto first = Answer(store, call.commit_step(), &RunStore::CommitStep);
      Report("CommitStep", first);
      if (first.ok()) {
        auto again = Answer(store, call.commit_step(), &RunStore::CommitStep);
        if (!again.ok()) Fail("CommitStep is not idempotent", again.status());
      }
      break;
    }
    case RpcCall::kReportSnapshot:
      Report("ReportSnapshot", Answer(store, call.report_snapshot(), &RunStore::ReportSnapshot));
      break;
    case RpcCall::kExpireAfterSeconds:
      g_now += absl::Seconds(call.expire_after_seconds());
      Report("ExpireLeases", store->ExpireLeases());
      break;
    case RpcCall::REQUEST_NOT_SET:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_verbose = std::getenv("BPO_FUZZ_VERBOSE") != nullptr;
  // A small strict run: T = 4 steps in F = 2 phases, B = 2, M = 4, one rater.
  g_config = new bpo::v1::RunConfig(bpo::DefaultRunConfig().config);
  g_config->set_run_id("fuzz");
  g_config->set_output_dir("/fuzz-runs");
  auto* s = g_config->mutable_schedule();
  s->set_total_steps(4);
  s->set_phases(2);
  s->set_batch_size(2);
  s->set_pairs_per_phase(4);
  g_config->mutable_annotation()->set_raters_per_pair(1);
  g_config->mutable_coordinator()->set_vocab_size(400);
  g_limits = new ValidationLimits(bpo::coordinator::LimitsFromConfig(*g_config));
  g_prompts = new std::vector<bpo::v1::Prompt>();
  for (int i = 0; i < 12; ++i) {
    bpo::v1::Prompt& p = g_prompts->emplace_back();
    p.set_prompt_id(absl::StrCat("q", i));
    p.set_text(absl::StrCat("prompt number ", i));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bpo::fuzz::RpcSequence sequence;
  if (!sequence.ParseFromArray(data, static_cast<int>(size))) return -1;  // not in the corpus
  if (sequence.calls_size() > 64) return -1;

  g_now = absl::FromUnixSeconds(1700000000);
  bpo::coordinator::RunStoreOptions options;
  options.path = ":memory:";
  options.fsync = false;
  options.clock = [] { return g_now; };
  auto store = RunStore::Open(*g_config, *g_prompts, options);
  if (!store.ok()) Fail("RunStore::Open", store.status());

  for (const bpo::fuzz::RpcCall& call : sequence.calls()) Run(store->get(), call);

  if (auto status = (*store)->Status(); !status.ok()) Fail("Status", status.status());
  auto counters = (*store)->Counters();
  if (!counters.ok()) Fail("Counters", counters.status());
  for (const auto& [state, n] : counters->pairs) {
    if (n < 0) Fail("Counters", absl::InternalError("a negative pair count"));
  }
  if (counters->steps_committed < 0 || counters->steps_committed > 4) {
    Fail("Counters", absl::InternalError(absl::StrCat(
                         "steps_committed = ", counters->steps_committed, " of T = 4")));
  }
  return 0;
}
