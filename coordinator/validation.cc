#include "coordinator/validation.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace bpo::coordinator {
namespace {

namespace fs = std::filesystem;

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

// Shown in messages: the start of an oversized or hostile string.
std::string Preview(const std::string& s) {
  return s.size() <= 64 ? s : absl::StrCat(s.substr(0, 64), "...");
}

absl::Status Bytes(const char* field, const std::string& value, int64_t max) {
  if (static_cast<int64_t>(value.size()) > max) {
    return Invalid(absl::StrCat(field, " is ", value.size(), " bytes; at most ", max, " allowed"));
  }
  return absl::OkStatus();
}

absl::Status Name(const char* field, const std::string& value, const ValidationLimits& l) {
  return Bytes(field, value, l.string_bytes_max);
}

absl::Status Count(const char* field, int64_t n, int64_t max) {
  if (n > max) return Invalid(absl::StrCat(field, " has ", n, " items; at most ", max, " allowed"));
  return absl::OkStatus();
}

template <typename Repeated>
absl::Status Names(const char* field, const Repeated& values, int64_t max_items,
                   const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Count(field, values.size(), max_items));
  for (const std::string& v : values) BPO_RETURN_IF_ERROR(Name(field, v, l));
  return absl::OkStatus();
}

absl::Status Tokens(const char* field, const google::protobuf::RepeatedField<int32_t>& ids,
                    int64_t max_len, const ValidationLimits& l) {
  if (ids.size() > max_len) {
    return Invalid(absl::StrCat(field, " has ", ids.size(), " tokens; at most ", max_len));
  }
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || (l.vocab_size > 0 && ids[i] >= l.vocab_size)) {
      return Invalid(absl::StrCat(field, "[", i, "] = ", ids[i], " is outside the vocabulary [0, ",
                                  l.vocab_size > 0 ? absl::StrCat(l.vocab_size) : "?", ")"));
    }
  }
  return absl::OkStatus();
}

// True when `path` has no ".." component and lies under `dir` (both made
// absolute against the working directory).
bool UnderDir(const std::string& path, const std::string& dir) {
  if (dir.empty() || path.empty()) return false;
  for (const auto& part : fs::path(path)) {
    if (part == "..") return false;
  }
  std::error_code ec;
  const fs::path p = fs::absolute(path, ec).lexically_normal();
  if (ec) return false;
  const fs::path d = fs::absolute(dir, ec).lexically_normal();
  if (ec) return false;
  auto pi = p.begin();
  for (auto di = d.begin(); di != d.end(); ++di, ++pi) {
    if (di->empty()) continue;  // a trailing separator
    if (pi == p.end() || *pi != *di) return false;
  }
  return pi != p.end();  // strictly below the directory
}

}  // namespace

ValidationLimits LimitsFromConfig(const bpo::v1::RunConfig& config) {
  ValidationLimits l;
  const auto& co = config.coordinator();
  if (co.has_string_bytes_max()) l.string_bytes_max = co.string_bytes_max();
  if (co.has_vocab_size()) l.vocab_size = co.vocab_size();
  if (co.has_prompt_tokens_max()) l.prompt_tokens_max = co.prompt_tokens_max();
  if (co.has_snapshot_bytes_max()) l.snapshot_bytes_max = co.snapshot_bytes_max();
  l.response_tokens_max = int64_t{config.sampling().max_new_tokens()} + 1;
  l.snapshot_dir = config.learner().snapshot_dir();
  if (l.snapshot_dir.empty()) {
    l.snapshot_dir = absl::StrCat(config.output_dir(), "/", config.run_id(), "/snapshots");
  }
  return l;
}

absl::Status Validate(const bpo::v1::RegisterRequest& r, const ValidationLimits& l) {
  const bpo::v1::WorkerInfo& w = r.worker();
  if (!bpo::v1::WorkerKind_IsValid(w.kind()) || w.kind() == bpo::v1::WORKER_KIND_UNSPECIFIED) {
    return Invalid(absl::StrCat("worker.kind ", static_cast<int>(w.kind()),
                                " is not a worker kind (actor, annotator or learner)"));
  }
  if (!bpo::v1::AnnotatorKind_IsValid(w.annotator_kind())) {
    return Invalid(absl::StrCat("worker.annotator_kind ", static_cast<int>(w.annotator_kind()),
                                " is not an annotator kind (rm, rule or human)"));
  }
  BPO_RETURN_IF_ERROR(Name("worker.name", w.name(), l));
  BPO_RETURN_IF_ERROR(Name("worker.host", w.host(), l));
  BPO_RETURN_IF_ERROR(Name("worker.bpo_version", w.bpo_version(), l));
  BPO_RETURN_IF_ERROR(Name("worker.model_sha256", w.model_sha256(), l));
  BPO_RETURN_IF_ERROR(Name("worker.serve_address", w.serve_address(), l));
  return Count("worker.cached_snapshots", w.cached_snapshots_size(), l.items_per_request_max);
}

absl::Status Validate(const bpo::v1::HeartbeatRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  return Names("lease_ids", r.lease_ids(), l.lease_ids_per_heartbeat_max, l);
}

absl::Status Validate(const bpo::v1::LeasePromptsRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  if (r.max_prompts() < 0 || r.max_prompts() > l.items_per_request_max) {
    return Invalid(absl::StrCat("max_prompts ", r.max_prompts(), " is outside [0, ",
                                l.items_per_request_max, "]"));
  }
  return absl::OkStatus();
}

std::string CheckPairBounds(const bpo::v1::SampledPair& p, const ValidationLimits& l) {
  absl::Status s = [&]() -> absl::Status {
    BPO_RETURN_IF_ERROR(Name("run_id", p.run_id(), l));
    BPO_RETURN_IF_ERROR(Name("pair_id", p.pair_id(), l));
    BPO_RETURN_IF_ERROR(Name("actor_id", p.actor_id(), l));
    BPO_RETURN_IF_ERROR(Bytes("prompt.text", p.prompt().text(), l.text_bytes_max));
    BPO_RETURN_IF_ERROR(Bytes("prompt.reference", p.prompt().reference(), l.text_bytes_max));
    BPO_RETURN_IF_ERROR(Name("prompt.prompt_id", p.prompt().prompt_id(), l));
    BPO_RETURN_IF_ERROR(Tokens("prompt_token_ids", p.prompt_token_ids(), l.prompt_tokens_max, l));
    // The learner cannot train on an empty prompt or response.
    if (p.prompt_token_ids().empty()) return Invalid("prompt_token_ids is empty");
    for (const auto* resp : {&p.a(), &p.b()}) {
      const bool a = resp == &p.a();
      if (resp->token_ids().empty())
        return Invalid(absl::StrCat(a ? "a" : "b", ".token_ids is empty"));
      BPO_RETURN_IF_ERROR(
          Tokens(a ? "a.token_ids" : "b.token_ids", resp->token_ids(), l.response_tokens_max, l));
      BPO_RETURN_IF_ERROR(Bytes(a ? "a.text" : "b.text", resp->text(), l.text_bytes_max));
      BPO_RETURN_IF_ERROR(Count(a ? "a.behavior_token_logprobs" : "b.behavior_token_logprobs",
                                resp->behavior_token_logprobs_size(), l.response_tokens_max));
      if (!std::isfinite(resp->behavior_logprob())) {
        return Invalid(absl::StrCat(a ? "a" : "b", ".behavior_logprob ", resp->behavior_logprob(),
                                    " is not finite"));
      }
    }
    return absl::OkStatus();
  }();
  return s.ok() ? std::string() : std::string(s.message());
}

absl::Status Validate(const bpo::v1::SubmitPairsRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  BPO_RETURN_IF_ERROR(Name("lease_id", r.lease_id(), l));
  BPO_RETURN_IF_ERROR(Count("pairs", r.pairs_size(), l.items_per_request_max));
  BPO_RETURN_IF_ERROR(Names("dropped_pair_ids", r.dropped_pair_ids(), l.items_per_request_max, l));
  for (const bpo::v1::SampledPair& p : r.pairs())
    BPO_RETURN_IF_ERROR(Name("pair_id", p.pair_id(), l));
  return absl::OkStatus();
}

absl::Status Validate(const bpo::v1::ReturnPromptsRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  BPO_RETURN_IF_ERROR(Name("lease_id", r.lease_id(), l));
  return Names("pair_ids", r.pair_ids(), l.items_per_request_max, l);
}

absl::Status Validate(const bpo::v1::LeasePairsRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  if (r.max_pairs() < 0 || r.max_pairs() > l.items_per_request_max) {
    return Invalid(absl::StrCat("max_pairs ", r.max_pairs(), " is outside [0, ",
                                l.items_per_request_max, "]"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const bpo::v1::ExtendLeaseRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  return Name("lease_id", r.lease_id(), l);
}

absl::Status Validate(const bpo::v1::SubmitLabelsRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  BPO_RETURN_IF_ERROR(Name("lease_id", r.lease_id(), l));
  BPO_RETURN_IF_ERROR(Count("labels", r.labels_size(), l.items_per_request_max));
  for (int i = 0; i < r.labels_size(); ++i) {
    const bpo::v1::Label& label = r.labels(i);
    if (!bpo::v1::Choice_IsValid(label.choice()) || label.choice() == bpo::v1::CHOICE_UNSPECIFIED) {
      return Invalid(absl::StrCat("labels[", i, "].choice ", static_cast<int>(label.choice()),
                                  " is not a choice (A, B, TIE or SKIP)"));
    }
    BPO_RETURN_IF_ERROR(Name("labels.pair_id", label.pair_id(), l));
    BPO_RETURN_IF_ERROR(Name("labels.provenance", label.provenance(), l));
    for (const auto& [has, v] : {std::pair{label.has_score_a(), label.score_a()},
                                 std::pair{label.has_score_b(), label.score_b()}}) {
      if (has && !std::isfinite(v)) {
        return Invalid(absl::StrCat("labels[", i, "]: a score is not finite (", v, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const bpo::v1::FetchBatchRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  if (r.step() < 0) return Invalid(absl::StrCat("step ", r.step(), " is negative"));
  return absl::OkStatus();
}

absl::Status Validate(const bpo::v1::CommitStepRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  if (r.step() < 0) return Invalid(absl::StrCat("step ", r.step(), " is negative"));
  BPO_RETURN_IF_ERROR(Names("pair_ids", r.pair_ids(), l.items_per_request_max, l));
  BPO_RETURN_IF_ERROR(Bytes("checkpoint", r.checkpoint(), l.path_bytes_max));
  BPO_RETURN_IF_ERROR(Count("metrics", r.metrics_size(), l.metrics_per_step_max));
  for (const auto& [name, value] : r.metrics()) {
    BPO_RETURN_IF_ERROR(Name("metrics key", name, l));
    if (!std::isfinite(value) || std::abs(value) > l.metric_abs_max) {
      return Invalid(absl::StrCat("metric '", Preview(name), "' = ", value,
                                  " is not finite or exceeds ", l.metric_abs_max,
                                  " in magnitude: the step is not recorded"));
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const bpo::v1::ReportSnapshotRequest& r, const ValidationLimits& l) {
  BPO_RETURN_IF_ERROR(Name("worker_id", r.worker_id(), l));
  BPO_RETURN_IF_ERROR(Name("serve_address", r.serve_address(), l));
  BPO_RETURN_IF_ERROR(Bytes("path", r.path(), l.path_bytes_max));
  const bpo::v1::SnapshotInfo& info = r.snapshot();
  BPO_RETURN_IF_ERROR(Name("snapshot.sha256", info.sha256(), l));
  BPO_RETURN_IF_ERROR(Name("snapshot.format", info.format(), l));
  if (info.size_bytes() > l.snapshot_bytes_max) {
    return Invalid(absl::StrCat("snapshot ", info.version(), " is ", info.size_bytes(),
                                " bytes; at most ", l.snapshot_bytes_max,
                                " allowed (coordinator.snapshot_bytes_max)"));
  }
  if (!r.path().empty() && !UnderDir(r.path(), l.snapshot_dir)) {
    return absl::PermissionDeniedError(
        absl::StrCat("snapshot path '", Preview(r.path()), "' is not under the run's snapshot ",
                     "directory '", l.snapshot_dir, "' (or names '..')"));
  }
  return absl::OkStatus();
}

}  // namespace bpo::coordinator
