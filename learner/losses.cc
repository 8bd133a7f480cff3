#include "learner/losses.h"

namespace bpo::learner {

const char* LossName(LossType type) {
  switch (type) {
    case LossType::kDpo:
      return "dpo";
    case LossType::kIpo:
      return "ipo";
    case LossType::kSlic:
      return "slic";
  }
  return "?";
}

LossOutput DapLoss(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected,
                   const at::Tensor& ref_chosen, const at::Tensor& ref_rejected,
                   const LossOptions& o) {
  LossOutput out;
  out.logits = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected);
  switch (o.type) {
    case LossType::kDpo:
      out.losses = -at::log_sigmoid(o.beta * out.logits) * (1 - o.label_smoothing);
      if (o.label_smoothing != 0) {
        out.losses = out.losses - at::log_sigmoid(-o.beta * out.logits) * o.label_smoothing;
      }
      break;
    case LossType::kIpo:
      out.losses = at::pow(out.logits - 1 / (2 * o.beta), 2);
      break;
    case LossType::kSlic:
      out.losses = at::relu(1 - o.beta * out.logits);
      break;
  }
  out.chosen_rewards = (o.beta * (policy_chosen - ref_chosen)).detach();
  out.rejected_rewards = (o.beta * (policy_rejected - ref_rejected)).detach();
  return out;
}

}  // namespace bpo::learner
