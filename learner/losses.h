// DAP losses on sequence log-probs, with
//   h = [log πθ(yw) − log πθ(yl)] − [log πref(yw) − log πref(yl)]:
//   DPO  −log σ(βh)  (with label smoothing ε: −(1−ε) log σ(βh) − ε log σ(−βh))
//   IPO  (h − 1/(2β))²
//   SLiC relu(1 − βh)
// as TRL's DPOTrainer computes them for loss_type sigmoid, ipo and hinge.
// All tensors [B]; differentiable in the policy log-probs.
#ifndef BPO_LEARNER_LOSSES_H_
#define BPO_LEARNER_LOSSES_H_

#include <ATen/ATen.h>

namespace bpo::learner {

enum class LossType { kDpo, kIpo, kSlic };
const char* LossName(LossType type);  // "dpo", "ipo", "slic"

struct LossOptions {
  LossType type = LossType::kDpo;
  double beta = 0.1;
  double label_smoothing = 0;  // DPO only
};

struct LossOutput {
  at::Tensor losses;            // [B]
  at::Tensor logits;            // [B] h
  at::Tensor chosen_rewards;    // [B] β(log πθ(yw) − log πref(yw)), detached
  at::Tensor rejected_rewards;  // [B] β(log πθ(yl) − log πref(yl)), detached
};

LossOutput DapLoss(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected,
                   const at::Tensor& ref_chosen, const at::Tensor& ref_rejected,
                   const LossOptions& options);

}  // namespace bpo::learner

#endif  // BPO_LEARNER_LOSSES_H_
