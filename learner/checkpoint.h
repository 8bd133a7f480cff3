// Learner checkpoints: everything needed to resume bitwise-exactly on CPU —
// the LoRA members, each member's AdamW moments and step, the EMA copies, the
// behavior snapshots the trainer still holds (the reference state), the step,
// the current behavior version and the RNG state.
//
// Layout: <dir>/step-<N>/rank-<r>.safetensors, then <dir>/step-<N>/DONE once
// every rank's part is durable (each part written to a temporary file,
// fsynced and renamed). A directory without DONE is ignored on resume, so a
// process killed mid-write loses nothing that was acknowledged before.
#ifndef BPO_LEARNER_CHECKPOINT_H_
#define BPO_LEARNER_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "learner/trainer.h"
#include "model/lora.h"

namespace bpo::learner {

struct CheckpointMeta {
  std::string run_id;
  // Identifies the base model: architecture and a hash of its config.json.
  std::string model_signature;
  uint64_t behavior_version = 0;
  // Offline mode: the seed that ordered the pairs (the step gives the cursor).
  uint64_t data_seed = 0;
};

// The signature of an HF model directory: "<architecture>:<sha256 of config.json>".
absl::StatusOr<std::string> ModelSignature(const std::string& model_dir);

// Writes rank `rank`'s part of the checkpoint for trainer.steps_done(); rank 0
// writes DONE after it (single-process runs; multi-rank runs call
// MarkComplete from rank 0 after a barrier).
absl::Status SaveCheckpoint(const std::string& dir, int rank, int world_size,
                            const CheckpointMeta& meta, EnsembleTrainer& trainer,
                            const model::LoraEnsemble& lora,
                            const std::map<uint64_t, model::MergedLora>& behavior);
absl::Status MarkComplete(const std::string& step_dir);

// The newest complete checkpoint directory under `dir`, or NOT_FOUND.
absl::StatusOr<std::string> LatestCheckpoint(const std::string& dir);

struct RestoredState {
  CheckpointMeta meta;
  int64_t step = 0;
  std::map<uint64_t, model::MergedLora> behavior;
};

// Restores rank `rank`'s part into `trainer` and `lora` (created with the same
// options). FAILED_PRECONDITION when the checkpoint belongs to another run,
// model or ensemble shape; DATA_LOSS/INVALID_ARGUMENT for a damaged file.
// Nothing is changed unless everything checks out.
absl::StatusOr<RestoredState> LoadCheckpoint(const std::string& step_dir, int rank,
                                             const CheckpointMeta& expected,
                                             EnsembleTrainer& trainer, model::LoraEnsemble& lora);

}  // namespace bpo::learner

#endif  // BPO_LEARNER_CHECKPOINT_H_
