// Behavior-policy snapshots: what learner rank 0 publishes at the start of
// each phase, what actors fetch, verify and sample from.
//
// Payload ("bpo-lora-snapshot/1"): one safetensors file, never the base model.
//   base_model.model.model.layers.N.<parent>.<module>.lora_{A,B}.weight
//       the merged adapter as PEFT names it, scaling folded in (lora_alpha =
//       r): A [R, in], B [out, R]; R = E·r for mean_delta, r for peft_linear.
//   member<i>.base_model.model.model.layers.N....lora_{A,B}.weight
//       member i's raw A [r, in] and B [out, r] (scaling alpha/r not folded
//       in), present only when the members were included.
//   __metadata__ (all strings): format, version, learner_step, merge_mode,
//       rank (R), members (E), members_included ("true"/"false"), member_rank,
//       member_lora_alpha, target_modules (comma-separated module names) and
//       adapter_config (the merged adapter's adapter_config.json).
// The bytes are a function of the tensors and these fields only (no clock),
// so the same adapter always hashes the same. Tensors keep the model's dtype.
#ifndef BPO_SNAPSHOT_SNAPSHOT_H_
#define BPO_SNAPSHOT_SNAPSHOT_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bpo/v1/common.pb.h"
#include "common/files.h"
#include "model/causal_lm.h"
#include "model/lora.h"

namespace bpo::snapshot {

inline constexpr char kSnapshotFormat[] = "bpo-lora-snapshot/1";

// The snapshot of `lora` merged with `mode`, as the bytes of one safetensors
// file (layout above). INVALID_ARGUMENT for tensors of a non-float dtype.
absl::StatusOr<std::string> EncodeSnapshot(const model::LoraEnsemble& lora, model::MergeMode mode,
                                           bool include_members, uint64_t version,
                                           int64_t learner_step);

struct SnapshotMetadata {
  std::string format;
  uint64_t version = 0;
  int64_t learner_step = 0;
  model::MergeMode merge_mode = model::MergeMode::kMeanDelta;
  int64_t rank = 0;  // R of the merged adapter
  int members = 0;   // E
  bool members_included = false;
  int64_t member_rank = 0;
  double member_lora_alpha = 0;
  std::vector<std::string> target_modules;  // sorted module names
  std::string adapter_config;               // JSON text
};

struct DecodedSnapshot {
  SnapshotMetadata metadata;
  // The adapted layers of the model, in the order of merged.a() / b().
  std::vector<model::LoraTarget> targets;
  // A LinearAdapter for the model (or LoraEnsemble::MergeInto with targets),
  // in the model's dtype and on its device.
  model::MergedLora merged;
  // When members_included: member i's tensors laid out as
  // LoraEnsemble::Parameters(i) (A of every target, then B of every target),
  // in the model's dtype and on its device. Empty otherwise.
  std::vector<std::vector<at::Tensor>> member_params;
};

// Parses and validates a payload against `model`: the format, the metadata,
// and that the tensors are exactly the expected names with the expected
// shapes for the model's layers. Errors are INVALID_ARGUMENT (DATA_LOSS for
// truncation) and read "<source>: ..." with "tensor '<name>'" where it applies.
absl::StatusOr<DecodedSnapshot> DecodeSnapshot(std::string_view bytes, const model::CausalLm& model,
                                               const std::string& source);

struct SnapshotStoreOptions {
  // Versions kept in memory; publishing more drops the lowest versions.
  int keep_versions = 4;
  // When set, every published snapshot is also written atomically to
  // <shared_dir>/snapshot-<version>.safetensors, then (as the marker that the
  // payload is complete) <shared_dir>/snapshot-<version>.sha256 in sha256sum
  // format. Files are never deleted by the store.
  std::string shared_dir;
  std::string format = kSnapshotFormat;  // SnapshotInfo.format
};

// A published snapshot. The bytes are immutable and shared: they stay valid
// for a holder even after the store drops the version.
struct StoredSnapshot {
  bpo::v1::SnapshotInfo info;
  std::shared_ptr<const std::string> bytes;
};

// The learner's published snapshots. Thread-safe.
class SnapshotStore {
 public:
  explicit SnapshotStore(SnapshotStoreOptions options = {});

  // Hashes and keeps `bytes` as `version` (and writes the shared files).
  // Publishing the same bytes again under a held version is a no-op that
  // returns the held info; different bytes under a held version are
  // ALREADY_EXISTS (actors may have cached the first ones). Shared-directory
  // failures come back as their status and leave the version unpublished.
  absl::StatusOr<bpo::v1::SnapshotInfo> Publish(uint64_t version, int64_t learner_step,
                                                std::string bytes);
  // NOT_FOUND naming the version and the versions held.
  absl::StatusOr<StoredSnapshot> Get(uint64_t version) const;
  // Infos of the held versions, ascending.
  std::vector<bpo::v1::SnapshotInfo> List() const;

  const SnapshotStoreOptions& options() const { return options_; }

  // <dir>/snapshot-<version>.safetensors
  static std::string PayloadPath(const std::string& dir, uint64_t version);

 private:
  absl::Status WriteShared(const bpo::v1::SnapshotInfo& info, const std::string& bytes) const;
  // False when `version` is not held, true when it is held with these bytes,
  // ALREADY_EXISTS when it is held with others.
  absl::StatusOr<bool> HeldWithSameBytes(uint64_t version, const std::string& sha256) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SnapshotStoreOptions options_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, StoredSnapshot> held_ ABSL_GUARDED_BY(mu_);
};

// Publishes again the newest keep_versions complete snapshots found in the
// store's shared directory (a restarted learner serving what it published
// before), checked against their .sha256 markers and the model. Their infos,
// ascending; none when the directory is unset or missing.
absl::StatusOr<std::vector<bpo::v1::SnapshotInfo>> RepublishSnapshots(SnapshotStore* store,
                                                                      const model::CausalLm& model);

}  // namespace bpo::snapshot

#endif  // BPO_SNAPSHOT_SNAPSHOT_H_
