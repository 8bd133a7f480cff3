// The learner's training step: DPO/IPO/SLiC on a batch of preference pairs,
// against a reference computed once per step, for every member of a LoRA
// ensemble in turn (each member has its own loss, gradient clipping and
// AdamW, as in the authors' BPO code), with one linear learning-rate decay
// to 0 over T steps.
//
// Reference modes:
//   behavior  BPO: each pair's reference is the snapshot that sampled it (its
//             version); log-probs come with the pair (actor) or are recomputed
//             here from the registered snapshot (learner);
//   sft       adapters disabled;
//   ema       the ensemble merged from an exponential moving average (rate τ)
//             of every member's parameters;
//   static    a fixed adapter (e.g. a stronger "gold" policy) or none.
#ifndef BPO_LEARNER_TRAINER_H_
#define BPO_LEARNER_TRAINER_H_

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "collective/collective.h"
#include "learner/losses.h"
#include "learner/optimizer.h"
#include "model/causal_lm.h"
#include "model/lora.h"

namespace bpo::learner {

// B preference pairs, tokenized: rows 0..B-1 are prompt + chosen, rows
// B..2B-1 prompt + rejected in the same pair order, right padded.
struct PairBatch {
  at::Tensor input_ids;                     // [2B, L] int64
  at::Tensor attention_mask;                // [2B, L]
  at::Tensor response_mask;                 // [2B, L]: 1 on response tokens (labels), EOS included
  std::vector<uint64_t> behavior_versions;  // [B]: snapshot that sampled each pair
  at::Tensor behavior_logps;                // [2B] sums from the actor, or undefined
  int64_t pairs() const { return input_ids.size(0) / 2; }
};

enum class ReferenceMode { kBehavior, kSft, kEma, kStatic };
enum class Reduction { kSum, kMean };

struct TrainerOptions {
  LossOptions loss;
  Reduction reduction = Reduction::kSum;  // the authors': sum (DPO, SLiC), mean (IPO)
  ReferenceMode reference = ReferenceMode::kBehavior;
  bool behavior_logps_from_actor = false;
  double ema_rate = 1e-3;
  model::MergeMode merge_mode = model::MergeMode::kPeftLinear;
  AdamWOptions adam;
  double learning_rate = 5e-5;
  double grad_clip = 1.0;
  int64_t total_steps = 625;
  int64_t warmup_steps = 0;
  // Data parallelism: each rank steps on its own B/R pairs; every member's
  // gradients are averaged over ranks before clipping and its optimizer step.
  // Not owned; null (or world size 1) for one process.
  collective::Collective* collective = nullptr;
};

struct StepMetrics {
  int64_t step = 0;  // 0-based index of the step just taken
  double learning_rate = 0;
  std::vector<double> member_loss;       // [E]
  std::vector<double> member_grad_norm;  // [E], before clipping
  double loss = 0;                       // mean over members
  double margin = 0;                     // mean β·h over members and pairs
  double accuracy = 0;                   // fraction of pairs with h > 0 (implicit reward accuracy)
  double chosen_logps = 0;               // mean policy log-prob of the chosen responses
  double rejected_logps = 0;
  double kl_reference = 0;  // mean over responses of log πref(y) − log πθ(y)
  double kl_sft = 0;        // the same against the SFT policy
  int64_t pairs = 0;        // pairs this rank trained on
  double seconds = 0;
  double pairs_per_second = 0;
};

class EnsembleTrainer {
 public:
  // `model` and `lora` must outlive the trainer; only `lora` changes.
  EnsembleTrainer(const model::CausalLm* model, model::LoraEnsemble* lora, TrainerOptions options);

  // Behavior mode, log-probs recomputed here: the merged adapter of snapshot v.
  void SetBehaviorSnapshot(uint64_t version, model::MergedLora adapter);
  void DropBehaviorSnapshotsBefore(uint64_t version);
  // Static mode: the fixed reference adapter (none = the SFT policy).
  void SetStaticReference(std::optional<model::MergedLora> adapter);

  // One step on every member. INVALID_ARGUMENT (nothing changed) when the
  // batch is malformed: shapes, token ids outside the vocabulary, empty
  // responses, missing behavior log-probs or an unregistered snapshot. With
  // several ranks, a failed all-reduce returns its error (a peer died: the
  // process should restart from the last checkpoint).
  absl::StatusOr<StepMetrics> Step(const PairBatch& batch);

  const std::map<uint64_t, model::MergedLora>& behavior_snapshots() const { return behavior_; }
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t step) { step_ = step; }
  const TrainerOptions& options() const { return options_; }
  std::vector<AdamW>& optimizers() { return optimizers_; }
  // EMA copies of each member's parameters (ema mode), A then B per target.
  std::vector<std::vector<at::Tensor>>& ema_parameters() { return ema_; }

 private:
  absl::StatusOr<StepMetrics> StepUnguarded(const PairBatch& batch);
  absl::Status Validate(const PairBatch& batch) const;
  absl::StatusOr<at::Tensor> ReferenceLogps(const PairBatch& batch, const at::Tensor& counts);
  at::Tensor Reduce(const at::Tensor& sums, const at::Tensor& counts) const;
  model::MergedLora EmaMerged() const;

  const model::CausalLm* model_;
  model::LoraEnsemble* lora_;
  TrainerOptions options_;
  std::vector<AdamW> optimizers_;
  std::map<uint64_t, model::MergedLora> behavior_;
  std::optional<model::MergedLora> static_;
  std::vector<std::vector<at::Tensor>> ema_;
  int64_t step_ = 0;
};

}  // namespace bpo::learner

#endif  // BPO_LEARNER_TRAINER_H_
