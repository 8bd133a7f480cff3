// Test-only helpers shared by the learner's training-step parity tests
// (SFT, reward model): fixture paths, weight snapshots, and the comparison of
// every weight after a step with PyTorch's, with the AdamW-aware split into
// regular and "sensitive" elements (0 < |g| < 100·eps on some step, where
// AdamW's update follows g/eps and rounding of g is amplified).
#ifndef BPO_LEARNER_PARITY_TESTING_H_
#define BPO_LEARNER_PARITY_TESTING_H_

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/safetensors.h"

namespace bpo::learner::testing {

inline std::string Fixture(const std::string& rest) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", rest);
}

using Weights = std::map<std::string, at::Tensor>;

// Detached copies of named weights.
inline Weights Snapshot(const std::vector<std::pair<std::string, at::Tensor>>& named) {
  Weights out;
  for (const auto& [name, t] : named) out[name] = t.detach().clone();
  return out;
}

// What a parity test keeps after each optimizer step: call Record from the
// trainer's on_step callback (after the update, when the gradients are still
// the clipped ones).
struct StepRecorder {
  double sensitive_grad = 1e-6;  // 0 < |g| < this makes an element sensitive
  std::string always_sensitive;  // a tensor counted sensitive in full ("" none)

  std::vector<Weights> after;                             // weights after step s + 1
  std::vector<std::map<std::string, double>> grad_norms;  // clipped, per tensor
  std::vector<Weights> sensitive;                         // cumulative over steps

  void Record(const std::vector<std::pair<std::string, at::Tensor>>& named) {
    std::map<std::string, double> norms;
    Weights flags;
    for (const auto& [name, t] : named) {
      norms[name] = t.grad().norm().item<double>();
      const at::Tensor g = t.grad().abs();
      flags[name] = (g < sensitive_grad) & (g > 0);
      if (name == always_sensitive) flags[name].fill_(true);
      if (!sensitive.empty()) flags[name] |= sensitive.back().at(name);
    }
    grad_norms.push_back(std::move(norms));
    sensitive.push_back(std::move(flags));
    after.push_back(Snapshot(named));
  }
};

struct WeightTolerances {
  double abs = 0;            // max |ours - PyTorch| over regular elements
  double sensitive_abs = 0;  // the same over sensitive elements
  double rel = 0;            // ||ours - PyTorch|| / ||PyTorch - init|| over regular elements
};

// Every weight of `ours` against the tensors of the safetensors file `path`
// (PyTorch's after `step`); `sensitive` flags the sensitive elements per
// tensor. Failures name the tensor and the step; the worst differences are
// printed.
inline void ExpectWeightsMatch(const std::string& path, int step, const Weights& ours,
                               const Weights& init, const Weights& sensitive,
                               const WeightTolerances& tol) {
  auto file = model::SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->header().tensors.size(), ours.size()) << path;
  double worst = 0, worst_sensitive = 0, worst_rel = 0;
  int64_t n_sensitive = 0, total = 0;
  for (const auto& [name, t] : ours) {
    auto theirs = (*file)->Tensor(name);
    ASSERT_TRUE(theirs.ok()) << theirs.status();
    ASSERT_EQ(t.sizes(), theirs->sizes()) << name;
    const at::Tensor diff = (t - *theirs).abs();
    const at::Tensor& flag = sensitive.at(name);
    const double rest = diff.masked_fill(flag, 0).max().item<double>();
    const double sens = diff.masked_fill(~flag, 0).max().item<double>();
    const double moved = (*theirs - init.at(name)).masked_fill(flag, 0).norm().item<double>();
    const double rel = moved > 0 ? diff.masked_fill(flag, 0).norm().item<double>() / moved : 0;
    EXPECT_LE(rest, tol.abs) << name << " after step " << step;
    EXPECT_LE(sens, tol.sensitive_abs) << name << " after step " << step << " (sensitive elements)";
    EXPECT_LE(rel, tol.rel) << name << " after step " << step << ", relative to its update";
    worst = std::max(worst, rest);
    worst_sensitive = std::max(worst_sensitive, sens);
    worst_rel = std::max(worst_rel, rel);
    n_sensitive += flag.sum().item<int64_t>();
    total += t.numel();
  }
  EXPECT_LT(n_sensitive, total / 500) << "after step " << step;
  std::printf(
      "after step %d: max |ours - PyTorch| %.3g, %lld of %lld weights sensitive: %.3g (bound "
      "%.3g); max relative to the update %.3g\n",
      step, worst, static_cast<long long>(n_sensitive), static_cast<long long>(total),
      worst_sensitive, tol.sensitive_abs, worst_rel);
}

}  // namespace bpo::learner::testing

#endif  // BPO_LEARNER_PARITY_TESTING_H_
