// LoRA ensembles on a frozen causal LM: E members, each a set of (A, B)
// pairs on the target linear layers, trained one at a time with their own
// loss (the authors' BPO code), and merged for sampling and reference
// log-probs in one of two named ways:
//   mean_delta:  ΔW = (1/E) Σ_i s·B_i·A_i            exact average, one LoRA of rank E·r
//   peft_linear: ΔW = B_m·A_m with A_m = Σ_i √(s/E)·A_i, B_m = Σ_i √(s/E)·B_i
//                (PEFT add_weighted_adapter(weights=[1/E]*E,
//                 combination_type="linear"): rank r, cross terms i≠j included)
// where s = alpha / r. Member i's update of a layer is s·B_i·(A_i·dropout(x)).
//
// Shapes: A_i [r, in], B_i [out, r], as PEFT stores lora_A / lora_B weights.
#ifndef BPO_MODEL_LORA_H_
#define BPO_MODEL_LORA_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/causal_lm.h"

namespace bpo::model {

enum class MergeMode { kMeanDelta, kPeftLinear };
const char* MergeModeName(MergeMode mode);  // "mean_delta", "peft_linear"

struct LoraOptions {
  int members = 5;
  int rank = 256;
  double alpha = 512;
  double dropout = 0.1;
  // Module names (q_proj, ...; suffixes and full names as PEFT matches them,
  // model/lora_targets.h) or {"all-linear"}.
  std::vector<std::string> target_modules = {"all-linear"};
  // PEFT's string form: a regular expression on full module names, or
  // "all-linear". When non-empty it replaces target_modules.
  std::string target_pattern;
  // Member i is initialised from seed + i (A Kaiming-uniform, B zero, as PEFT).
  uint64_t seed = 0;
};

// One adapted linear layer of the model.
struct LoraTarget {
  int64_t layer;
  LinearKind kind;
  int64_t in, out;
};

class LoraEnsemble;

// The key PEFT writes for a LoRA factor of a decoder linear layer:
// "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight" (ab "A"/"B").
std::string PeftKey(int64_t layer, LinearKind kind, const char* ab);
// adapter_config.json of a plain LoRA adapter as PEFT reads it; an empty
// base_model is written as null.
std::string PeftAdapterConfigJson(int64_t rank, double alpha, double dropout,
                                  const std::vector<std::string>& modules,
                                  const std::string& base_model);

// A LinearAdapter for member i (dropout active while `training`), trainable.
class LoraMember : public LinearAdapter {
 public:
  LoraMember(const LoraEnsemble* ensemble, int index, bool training)
      : ensemble_(ensemble), index_(index), training_(training) {}
  at::Tensor Delta(int64_t layer, LinearKind kind, const at::Tensor& x) const override;

 private:
  const LoraEnsemble* ensemble_;
  int index_;
  bool training_;
};

// The merged ensemble as one low-rank adapter (detached snapshot).
class MergedLora : public LinearAdapter {
 public:
  at::Tensor Delta(int64_t layer, LinearKind kind, const at::Tensor& x) const override;
  // Per target, A [R, in] and B [out, R] with scaling folded in: ΔW = B·A.
  const std::vector<at::Tensor>& a() const { return a_; }
  const std::vector<at::Tensor>& b() const { return b_; }
  int64_t rank() const { return a_.empty() ? 0 : a_[0].size(0); }
  // slots: [layers * kNumLinearKinds] -> index into a/b or -1 (as saved by
  // checkpoints and snapshots).
  const std::vector<int>& slots() const { return slot_; }
  static MergedLora FromTensors(std::vector<int> slots, std::vector<at::Tensor> a,
                                std::vector<at::Tensor> b);

 private:
  friend class LoraEnsemble;

  // The key PEFT writes for a LoRA factor of a decoder linear layer:
  // "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight" (ab "A"/"B").
  std::string PeftKey(int64_t layer, LinearKind kind, const char* ab);
  // adapter_config.json of a plain LoRA adapter as PEFT reads it; an empty
  // base_model is written as null.
  std::string PeftAdapterConfigJson(int64_t rank, double alpha, double dropout,
                                    const std::vector<std::string>& modules,
                                    const std::string& base_model);
  std::vector<int> slot_;  // [layers * kNumLinearKinds] -> target index or -1
  std::vector<at::Tensor> a_, b_;
};

class LoraEnsemble {
 public:
  // Fresh members for `model`'s shapes, in fp32 (PEFT's default, whatever the
  // model's dtype) on the model's device.
  static absl::StatusOr<std::unique_ptr<LoraEnsemble>> Create(const CausalLm& model,
                                                              const LoraOptions& options);
  // Members from PEFT adapter directories (adapter_config.json +
  // adapter_model.safetensors); all must share rank, alpha and targets.
  static absl::StatusOr<std::unique_ptr<LoraEnsemble>> LoadPeft(
      const CausalLm& model, const std::vector<std::string>& dirs);

  int members() const { return static_cast<int>(a_.size()); }
  int rank() const { return options_.rank; }
  double scaling() const { return options_.alpha / options_.rank; }
  const LoraOptions& options() const { return options_; }
  const std::vector<LoraTarget>& targets() const { return targets_; }
  // Target index of (layer, kind), or -1; all of them ([layers * kNumLinearKinds]).
  int Slot(int64_t layer, LinearKind kind) const;
  const std::vector<int>& slots() const { return slot_; }

  // Member i's tensors A then B per target; they require grad.
  std::vector<at::Tensor> Parameters(int member) const;
  const at::Tensor& A(int member, int target) const { return a_[member][target]; }
  const at::Tensor& B(int member, int target) const { return b_[member][target]; }

  LoraMember Member(int i, bool training = false) const { return LoraMember(this, i, training); }
  MergedLora Merge(MergeMode mode) const;
  // Merges other tensors of this ensemble's shape: params[i] laid out as
  // Parameters(i) (e.g. an exponential moving average of the members).
  MergedLora MergeParameters(MergeMode mode,
                             const std::vector<std::vector<at::Tensor>>& params) const;

  // Adds (or removes) a merged ensemble's ΔW to the model's weights in place,
  // so that sampling runs at base-model speed. Unmerge subtracts the same
  // ΔW (exact up to rounding).
  static void MergeInto(const MergedLora& merged, const std::vector<LoraTarget>& targets,
                        CausalLm* model);
  static void Unmerge(const MergedLora& merged, const std::vector<LoraTarget>& targets,
                      CausalLm* model);

  // PEFT format: adapter_config.json + adapter_model.safetensors with the
  // module names PEFT writes for this architecture. SavePeft writes member i;
  // ExportMergedPeft writes the merged adapter (rank E·r for mean_delta, r for
  // peft_linear) so PEFT and vLLM load the trained policy.
  absl::Status SavePeft(int member, const std::string& dir, const CausalLm& model) const;
  absl::Status ExportMergedPeft(MergeMode mode, const std::string& dir,
                                const CausalLm& model) const;

 private:
  friend class LoraMember;
  LoraEnsemble() = default;
  absl::Status InitTargets(const CausalLm& model);
  LoraOptions options_;
  std::vector<LoraTarget> targets_;
  std::vector<int> slot_;                   // [layers * kNumLinearKinds]
  std::vector<std::vector<at::Tensor>> a_;  // [member][target] [r, in]
  std::vector<std::vector<at::Tensor>> b_;  // [member][target] [out, r]
};

}  // namespace bpo::model

#endif  // BPO_MODEL_LORA_H_
