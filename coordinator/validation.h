// Checks every coordinator request against the run's bounds before the store
// sees it: enums are known values, strings and repeated fields are bounded,
// token ids lie in [0, vocab_size), lengths fit the run's sampling limits,
// snapshot paths lie under the run's snapshot directory and step metrics are
// finite. A refused request gets INVALID_ARGUMENT (or PERMISSION_DENIED for
// a path outside the snapshot directory) naming the field and the bound, and
// leaves the store untouched. Stateless and thread-compatible; the checks
// that need the store's state (who holds a lease, a name's registered kind)
// are in RunStore. docs/security.md lists each limit.
#ifndef BPO_COORDINATOR_VALIDATION_H_
#define BPO_COORDINATOR_VALIDATION_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "bpo/v1/annotation.pb.h"
#include "bpo/v1/config.pb.h"
#include "bpo/v1/coordinator.pb.h"

namespace bpo::coordinator {

struct ValidationLimits {
  // Names, ids, hosts, addresses, sha256 digests, provenance, formats.
  int64_t string_bytes_max = 256;
  // Prompt and response texts of a submitted pair, a label's provenance aside.
  int64_t text_bytes_max = 1 << 20;
  // Snapshot and checkpoint paths.
  int64_t path_bytes_max = 4096;
  // Items of one request: pairs, dropped ids, returned ids, labels, batch ids.
  int64_t items_per_request_max = 4096;
  // Lease ids of one heartbeat: a worker holds at most this many leases.
  int64_t lease_ids_per_heartbeat_max = 1024;
  // Token ids must lie in [0, vocab_size); 0 means unknown: only negative
  // ids are refused.
  int64_t vocab_size = 0;
  int64_t prompt_tokens_max = 4096;
  // sampling.max_new_tokens + 1 (an EOS after the last new token).
  int64_t response_tokens_max = 129;
  // Snapshot payloads reported by the learner.
  uint64_t snapshot_bytes_max = uint64_t{16} << 30;
  // Reported snapshot paths must lie under this directory; empty refuses
  // every path (the learner can still give a serve_address).
  std::string snapshot_dir;
  // Step metrics (loss, accuracy, ...): finite and at most this in magnitude.
  double metric_abs_max = 1e12;
  int64_t metrics_per_step_max = 256;
};

// The defaults above, with the config's coordinator.* overrides, the sampling
// bounds of `config` and its snapshot directory (learner.snapshot_dir, else
// <output_dir>/<run_id>/snapshots as the learner uses).
ValidationLimits LimitsFromConfig(const bpo::v1::RunConfig& config);

// One overload per coordinator request. OK or INVALID_ARGUMENT /
// PERMISSION_DENIED naming the field.
absl::Status Validate(const bpo::v1::RegisterRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::HeartbeatRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::LeasePromptsRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::SubmitPairsRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::ReturnPromptsRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::LeasePairsRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::ExtendLeaseRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::SubmitLabelsRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::FetchBatchRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::CommitStepRequest& r, const ValidationLimits& l);
absl::Status Validate(const bpo::v1::ReportSnapshotRequest& r, const ValidationLimits& l);

// The bounds of one submitted pair: empty when it fits, else the reason.
// Validate(SubmitPairsRequest) checks the request as a whole; the service
// answers each pair out of bounds REJECTED (INVALID_ARGUMENT) on its own and
// hands the store only the others, as the protocol's per-item status asks.
std::string CheckPairBounds(const bpo::v1::SampledPair& pair, const ValidationLimits& l);

}  // namespace bpo::coordinator

#endif  // BPO_COORDINATOR_VALIDATION_H_
