#include "learner/trainer.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
#include "model/logprobs.h"
#include "model/torch_errors.h"

namespace bpo::learner {

EnsembleTrainer::EnsembleTrainer(const model::CausalLm* model, model::LoraEnsemble* lora,
                                 TrainerOptions options)
    : model_(model), lora_(lora), options_(options) {
  for (int i = 0; i < lora_->members(); ++i) {
    optimizers_.emplace_back(lora_->Parameters(i), options_.adam);
    if (options_.reference == ReferenceMode::kEma) {
      std::vector<at::Tensor> copy;
      for (const at::Tensor& p : lora_->Parameters(i)) copy.push_back(p.detach().clone());
      ema_.push_back(std::move(copy));
    }
  }
}

void EnsembleTrainer::SetBehaviorSnapshot(uint64_t version, model::MergedLora adapter) {
  behavior_.insert_or_assign(version, std::move(adapter));
}

void EnsembleTrainer::DropBehaviorSnapshotsBefore(uint64_t version) {
  behavior_.erase(behavior_.begin(), behavior_.lower_bound(version));
}

void EnsembleTrainer::SetStaticReference(std::optional<model::MergedLora> adapter) {
  static_ = std::move(adapter);
}

absl::Status EnsembleTrainer::Validate(const PairBatch& b) const {
  if (b.input_ids.dim() != 2 || b.input_ids.size(0) == 0 || b.input_ids.size(0) % 2 != 0 ||
      b.attention_mask.sizes() != b.input_ids.sizes() ||
      b.response_mask.sizes() != b.input_ids.sizes()) {
    return absl::InvalidArgumentError(
        "batch: input_ids, attention_mask and response_mask must be [2B, L] with B >= 1");
  }
  const int64_t B = b.pairs();
  const int64_t vocab = model_->config().vocab_size;
  const at::Tensor ids = b.input_ids.to(at::kCPU);
  if (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= vocab) {
    return absl::InvalidArgumentError(absl::StrCat("batch: token ids must be in [0, ", vocab,
                                                   "), got [", ids.min().item<int64_t>(), ", ",
                                                   ids.max().item<int64_t>(), "]"));
  }
  const at::Tensor counts =
      b.response_mask.to(at::kCPU).narrow(1, 1, b.input_ids.size(1) - 1).sum(1);
  for (int64_t r = 0; r < 2 * B; ++r) {
    if (counts[r].item<int64_t>() == 0) {
      return absl::InvalidArgumentError(absl::StrCat("batch: pair ", r % B, " has an empty ",
                                                     r < B ? "chosen" : "rejected", " response"));
    }
  }
  if (options_.reference == ReferenceMode::kBehavior) {
    if (static_cast<int64_t>(b.behavior_versions.size()) != B) {
      return absl::InvalidArgumentError(absl::StrCat("batch: ", b.behavior_versions.size(),
                                                     " behavior versions for ", B, " pairs"));
    }
    if (options_.behavior_logps_from_actor) {
      if (!b.behavior_logps.defined() || b.behavior_logps.numel() != 2 * B ||
          !at::isfinite(b.behavior_logps).all().item<bool>()) {
        return absl::InvalidArgumentError(
            "batch: behavior log-probs from the actor are missing or not finite "
            "(reference.logprob_source is actor)");
      }
    } else {
      for (int64_t i = 0; i < B; ++i) {
        if (!behavior_.count(b.behavior_versions[i])) {
          return absl::InvalidArgumentError(
              absl::StrCat("batch: pair ", i, " was sampled by snapshot ", b.behavior_versions[i],
                           ", which the learner does not hold"));
        }
      }
    }
  }
  return absl::OkStatus();
}

at::Tensor EnsembleTrainer::Reduce(const at::Tensor& sums, const at::Tensor& counts) const {
  if (options_.reduction == Reduction::kSum) return sums;
  return sums / counts.to(sums.scalar_type()).clamp_min(1);
}

model::MergedLora EnsembleTrainer::EmaMerged() const {
  return lora_->MergeParameters(options_.merge_mode, ema_);
}

absl::StatusOr<at::Tensor> EnsembleTrainer::ReferenceLogps(const PairBatch& b,
                                                           const at::Tensor& counts) {
  at::NoGradGuard no_grad;
  auto logps = [&](const model::LinearAdapter* adapter, const at::Tensor& rows) {
    const model::SequenceLogprobs lp = model::ComputeSequenceLogprobs(
        *model_, b.input_ids.index_select(0, rows), b.attention_mask.index_select(0, rows),
        b.response_mask.index_select(0, rows), adapter);
    return lp.sum;
  };
  const int64_t B = b.pairs();
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(b.input_ids.device());
  const at::Tensor all = at::arange(2 * B, long_opts);
  switch (options_.reference) {
    case ReferenceMode::kSft:
      return Reduce(logps(nullptr, all), counts);
    case ReferenceMode::kStatic:
      return Reduce(logps(static_ ? &*static_ : nullptr, all), counts);
    case ReferenceMode::kEma: {
      const model::MergedLora ema = EmaMerged();
      return Reduce(logps(&ema, all), counts);
    }
    case ReferenceMode::kBehavior:
      break;
  }
  if (options_.behavior_logps_from_actor) {
    return Reduce(b.behavior_logps.to(b.input_ids.device(), at::kFloat), counts);
  }
  // Pairs grouped by the snapshot that sampled them; one forward per version.
  at::Tensor sums = at::zeros({2 * B}, long_opts.dtype(at::kFloat));
  std::set<uint64_t> versions(b.behavior_versions.begin(), b.behavior_versions.end());
  for (uint64_t v : versions) {
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < B; ++i) {
      if (b.behavior_versions[i] == v) rows.push_back(i);
    }
    for (int64_t i = 0; i < B; ++i) {
      if (b.behavior_versions[i] == v) rows.push_back(B + i);
    }
    const at::Tensor idx = at::tensor(rows, at::kLong).to(b.input_ids.device());
    sums.index_copy_(0, idx, logps(&behavior_.at(v), idx));
  }
  return Reduce(sums, counts);
}

absl::StatusOr<StepMetrics> EnsembleTrainer::StepUnguarded(const PairBatch& host) {
  if (auto s = Validate(host); !s.ok()) return s;
  // Batches are assembled on the CPU; the step runs where the model is (one
  // copy per step; everything after stays on the device).
  PairBatch b = host;
  const at::Device device = model_->options().device();
  if (b.input_ids.device() != device) {
    b.input_ids = b.input_ids.to(device, /*non_blocking=*/true);
    b.attention_mask = b.attention_mask.to(device, /*non_blocking=*/true);
    b.response_mask = b.response_mask.to(device, /*non_blocking=*/true);
    if (b.behavior_logps.defined()) b.behavior_logps = b.behavior_logps.to(device);
  }
  const auto start = std::chrono::steady_clock::now();
  const int64_t B = b.pairs();
  StepMetrics m;
  m.step = step_;
  m.learning_rate =
      LinearScheduleLr(options_.learning_rate, step_, options_.total_steps, options_.warmup_steps);
  // Label positions: every response token but never position 0.
  at::Tensor counts = b.response_mask.narrow(1, 1, b.input_ids.size(1) - 1).sum(1);
  auto ref = ReferenceLogps(b, counts);
  if (!ref.ok()) return ref.status();
  const at::Tensor ref_chosen = ref->narrow(0, 0, B), ref_rejected = ref->narrow(0, B, B);
  at::Tensor sft_sums;
  {
    at::NoGradGuard no_grad;
    sft_sums = options_.reference == ReferenceMode::kSft
                   ? at::Tensor()
                   : model::ComputeSequenceLogprobs(*model_, b.input_ids, b.attention_mask,
                                                    b.response_mask, nullptr)
                         .sum;
  }

  const int E = lora_->members();
  double margin = 0, accuracy = 0, chosen = 0, rejected = 0, kl_ref = 0, kl_sft = 0;
  for (int i = 0; i < E; ++i) {
    const model::LoraMember member = lora_->Member(i, /*training=*/true);
    const model::SequenceLogprobs lp = model::ComputeSequenceLogprobs(
        *model_, b.input_ids, b.attention_mask, b.response_mask, &member);
    const at::Tensor policy = Reduce(lp.sum, counts);
    const LossOutput out = DapLoss(policy.narrow(0, 0, B), policy.narrow(0, B, B), ref_chosen,
                                   ref_rejected, options_.loss);
    const at::Tensor loss = out.losses.mean();
    for (const at::Tensor& p : lora_->Parameters(i)) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    loss.backward();
    if (options_.collective != nullptr && options_.collective->world_size() > 1) {
      std::vector<at::Tensor> grads;
      for (const at::Tensor& p : lora_->Parameters(i)) grads.push_back(p.grad());
      if (absl::Status s = options_.collective->AllReduceMean(grads); !s.ok()) return s;
    }
    const double norm = ClipGradNorm(lora_->Parameters(i), options_.grad_clip);
    optimizers_[i].Step(m.learning_rate);

    m.member_loss.push_back(loss.item<double>());
    m.member_grad_norm.push_back(norm);
    const at::Tensor h = out.logits.detach();
    margin += (options_.loss.beta * h).mean().item<double>();
    accuracy += (h > 0).to(at::kFloat).mean().item<double>();
    const at::Tensor sums = lp.sum.detach();
    chosen += sums.narrow(0, 0, B).mean().item<double>();
    rejected += sums.narrow(0, B, B).mean().item<double>();
    // Responses were sampled from the behavior policy: mean log-ratio
    // estimates KL(β‖πθ) when the reference is the behavior.
    kl_ref += (*ref - policy.detach()).mean().item<double>();
    if (sft_sums.defined()) kl_sft += (sft_sums - sums).mean().item<double>();
  }
  if (options_.reference == ReferenceMode::kEma) {
    at::NoGradGuard no_grad;
    for (int i = 0; i < E; ++i) {
      const auto params = lora_->Parameters(i);
      for (size_t k = 0; k < params.size(); ++k)
        ema_[i][k].lerp_(params[k].detach(), options_.ema_rate);
    }
  }
  ++step_;
  m.loss = 0;
  for (double l : m.member_loss) m.loss += l / E;
  m.margin = margin / E;
  m.accuracy = accuracy / E;
  m.chosen_logps = chosen / E;
  m.rejected_logps = rejected / E;
  m.kl_reference = kl_ref / E;
  m.kl_sft = options_.reference == ReferenceMode::kSft ? m.kl_reference : kl_sft / E;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.pairs = B;
  m.pairs_per_second = B / m.seconds;
  return m;
}

absl::StatusOr<StepMetrics> EnsembleTrainer::Step(const PairBatch& b) {
  return model::CatchTorchErrors(absl::StrCat("learner step ", step_ + 1),
                                 [&] { return StepUnguarded(b); });
}

}  // namespace bpo::learner
