// The authors' optimizer for each LoRA member: AdamW (torch.optim.AdamW's
// arithmetic), global-norm gradient clipping (torch.nn.utils.clip_grad_norm_)
// and a linear schedule (transformers' get_linear_schedule_with_warmup).
#ifndef BPO_LEARNER_OPTIMIZER_H_
#define BPO_LEARNER_OPTIMIZER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <random>
#include <vector>

namespace bpo::learner {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-6;
  double weight_decay = 0;
};

// Per-parameter first and second moments and the step count.
class AdamW {
 public:
  AdamW(std::vector<at::Tensor> params, AdamWOptions options);

  // One update with learning rate `lr` from the params' .grad(); parameters
  // without a gradient are skipped (their moments stay).
  void Step(double lr);

  int64_t steps() const { return step_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  // State for checkpoints: exp_avg and exp_avg_sq per parameter.
  std::vector<at::Tensor>& exp_avg() { return exp_avg_; }
  std::vector<at::Tensor>& exp_avg_sq() { return exp_avg_sq_; }
  void set_steps(int64_t step) { step_ = step; }

 private:
  std::vector<at::Tensor> params_;
  AdamWOptions options_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  int64_t step_ = 0;
};

// Scales gradients so their global 2-norm is at most max_norm (no-op for
// max_norm <= 0). Returns the norm before clipping.
double ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm);

// Learning rate at 0-based optimizer step `step`: linear warm-up, then linear
// decay to 0 at total_steps.
double LinearScheduleLr(double base_lr, int64_t step, int64_t total_steps, int64_t warmup_steps);

// Rows of a dataset of `size` rows, epoch by epoch: a seeded shuffle
// (std::shuffle over mt19937_64), shuffled again when every row was taken.
// A batch may span two epochs.
class EpochOrder {
 public:
  EpochOrder(size_t size, uint64_t seed);
  std::vector<size_t> Next(int64_t count);

 private:
  std::vector<size_t> order_;
  std::mt19937_64 rng_;
  size_t cursor_ = 0;
};

}  // namespace bpo::learner

#endif  // BPO_LEARNER_OPTIMIZER_H_
