// TrainSft on the tiny random Llama fixture against plain PyTorch +
// transformers (tests/fixtures/learner/sft_step, from make_sft_fixtures.py):
// 4 demonstrations in one batch (one prompt and one response truncated), full
// fine-tuning, AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.1), 4 steps
// with 2 warm-up steps (lr 0, 5e-3, 1e-2, 5e-3), clipping at 5 (active on
// steps 1 and 2). Checks the token ids, every step's loss, learning rate and
// clipped gradient norms, and every weight after steps 1, 2 and 4.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "learner/parity_testing.h"
#include "learner/sft.h"
#include "model/generate.h"
#include "model/policy.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace bpo::learner {
namespace {

using testing::Fixture;
using testing::Weights;

std::vector<int64_t> Ids(const nlohmann::json& j) { return j.get<std::vector<int64_t>>(); }

// Tolerances (measured differences in parentheses, LibTorch vs PyTorch CPU):
// Loss: the same float32 token log-probs summed in another order (5e-7).
constexpr double kLossTol = 1e-5;
// Clipped gradient norm of every tensor, relative (1.2e-6; 25% without clipping).
constexpr double kGradNormRelTol = 1e-4;
// AdamW moves a weight by lr·m̂/(√v̂ + eps): where 0 < |g| < 100·eps on some
// step the update follows g/eps, and the rounding of g (BLAS summation order)
// moves the weight by up to ~lr·Δg/eps. Those weights (< 0.1% here) are held
// to kSensitiveAbsTol (5e-5); every other one to kWeightAbsTol (2e-6 after
// step 2, 5e-6 after step 4, where the trajectories have drifted apart). A 1%
// larger lr moves after2 by 5.6e-5; a missing clip moves after4 by 6e-3
// (after2 barely: AdamW ignores the scale of g except near eps).
constexpr double kSensitiveGrad = 1e-6;
constexpr double kWeightAbsTol = 2e-5;
constexpr double kSensitiveAbsTol = 5e-4;
// ||ours - PyTorch|| / ||PyTorch - init|| per tensor: error relative to how far
// the steps moved that tensor, over its regular weights (5.4e-6; 1e-2 with a
// 1% larger lr).
constexpr double kWeightRelTol = 1e-3;

// The ids, attention and response masks TrainSft builds from our tokenizer
// (learner/sft.cc, MakeBatch: BOS + prompt tail ++ response head + EOS,
// right-padded) equal those of batch.safetensors row by row.
void ExpectSameBatch(const model::Tokenizer& tok, const SftOptions& o, const nlohmann::json& rows,
                     const std::vector<std::pair<std::string, std::string>>& demos) {
  auto batch = model::SafetensorsFile::Open(Fixture("learner/sft_step/batch.safetensors"));
  ASSERT_TRUE(batch.ok()) << batch.status();
  const at::Tensor ids = *(*batch)->Tensor("input_ids");
  const at::Tensor attention = *(*batch)->Tensor("attention_mask");
  const at::Tensor response = *(*batch)->Tensor("response_mask");
  ASSERT_EQ(ids.size(0), static_cast<int64_t>(demos.size()));
  const int64_t L = ids.size(1);
  for (size_t r = 0; r < demos.size(); ++r) {
    const std::vector<int64_t> prompt =
        model::KeepPromptTail(tok.Encode(demos[r].first, /*add_bos=*/true), o.max_prompt_tokens);
    std::vector<int64_t> resp = tok.Encode(demos[r].second, /*add_bos=*/false);
    EXPECT_EQ(resp, Ids(rows[r]["response_ids_full"])) << "row " << r;
    resp.resize(std::min<size_t>(resp.size(), o.max_response_tokens));
    resp.push_back(tok.eos_id());
    EXPECT_EQ(prompt, Ids(rows[r]["prompt_ids"])) << "row " << r;
    EXPECT_EQ(resp, Ids(rows[r]["response_ids"])) << "row " << r;
    std::vector<int64_t> seq = prompt;
    seq.insert(seq.end(), resp.begin(), resp.end());
    const int64_t len = static_cast<int64_t>(seq.size());
    ASSERT_LE(len, L) << "row " << r;
    std::vector<int64_t> want_ids(L, std::max<int64_t>(tok.pad_id(), 0)), want_att(L, 0),
        want_resp(L, 0);
    std::copy(seq.begin(), seq.end(), want_ids.begin());
    std::fill_n(want_att.begin(), len, 1);
    std::fill(want_resp.begin() + prompt.size(), want_resp.begin() + len, 1);
    EXPECT_TRUE(at::equal(ids[r], at::tensor(want_ids, at::kLong))) << "input_ids row " << r;
    EXPECT_TRUE(at::equal(attention[r], at::tensor(want_att, at::kLong))) << "attention row " << r;
    EXPECT_TRUE(at::equal(response[r], at::tensor(want_resp, at::kLong))) << "response row " << r;
  }
}

TEST(SftParityTest, FourStepsMatchPytorchAndTransformers) {
  std::ifstream in(Fixture("learner/sft_step/steps.json"));
  ASSERT_TRUE(in) << Fixture("learner/sft_step/steps.json");
  const nlohmann::json info = nlohmann::json::parse(in);
  auto policy = model::LoadPolicy(Fixture("llama"), {});
  ASSERT_TRUE(policy.ok()) << policy.status();
  model::CausalLm& model = *policy->model;
  const model::Tokenizer& tok = *policy->tokenizer;

  const nlohmann::json& so = info["sft_options"];
  SftOptions o;
  o.steps = so["steps"];
  o.batch_size = so["batch_size"];
  o.learning_rate = so["learning_rate"];
  o.warmup_steps = so["warmup_steps"];
  o.grad_clip = so["grad_clip"];
  o.weight_decay = so["weight_decay"];
  o.max_prompt_tokens = so["max_prompt_tokens"];
  o.max_response_tokens = so["max_response_tokens"];

  std::vector<std::pair<std::string, std::string>> demos;
  const auto& rows = info["batch"]["demonstrations"];
  for (const auto& row : rows) demos.emplace_back(row["prompt"], row["response"]);
  ASSERT_EQ(o.batch_size, static_cast<int64_t>(demos.size())) << "one batch holds every row";
  ExpectSameBatch(tok, o, rows, demos);

  const Weights init = testing::Snapshot(model.NamedParameters());
  testing::StepRecorder rec;
  rec.sensitive_grad = kSensitiveGrad;
  auto log =
      TrainSft(&model, tok, demos, o, [&](const SftStep&) { rec.Record(model.NamedParameters()); });
  const auto& after = rec.after;
  auto& grad_norms = rec.grad_norms;
  const auto& sensitive = rec.sensitive;
  ASSERT_TRUE(log.ok()) << log.status();
  const auto& steps = info["steps"];
  ASSERT_EQ(log->size(), steps.size());
  ASSERT_EQ(after.size(), steps.size());

  for (size_t s = 0; s < steps.size(); ++s) {
    const auto& ref = steps[s];
    EXPECT_NEAR((*log)[s].loss, ref["loss"].get<double>(), kLossTol) << "step " << s + 1;
    EXPECT_DOUBLE_EQ((*log)[s].learning_rate, ref["lr"].get<double>()) << "step " << s + 1;
    EXPECT_NEAR((*log)[s].grad_norm, ref["grad_norm"].get<double>(),
                kGradNormRelTol * ref["grad_norm"].get<double>())
        << "pre-clip grad norm, step " << s + 1;
    double total = 0, worst_rel = 0;
    ASSERT_EQ(grad_norms[s].size(), ref["grad_norms_after_clip"].size());
    for (const auto& [name, want] : ref["grad_norms_after_clip"].items()) {
      ASSERT_TRUE(grad_norms[s].count(name)) << name;
      const double got = grad_norms[s][name];
      total += got * got;
      worst_rel = std::max(worst_rel, std::abs(got / want.get<double>() - 1));
      EXPECT_NEAR(got, want.get<double>(), kGradNormRelTol * want.get<double>())
          << "clipped grad norm of " << name << ", step " << s + 1;
    }
    EXPECT_NEAR(std::sqrt(total), ref["grad_norm_after_clip"].get<double>(),
                kGradNormRelTol * ref["grad_norm_after_clip"].get<double>())
        << "step " << s + 1 << " (pre-clip norm " << ref["grad_norm"] << ")";
    std::printf(
        "step %zu: lr %g, loss %.7f (PyTorch %.7f), clipped grad norm %.6f (PyTorch %.6f, "
        "per tensor within %.2g)\n",
        s + 1, (*log)[s].learning_rate, (*log)[s].loss, ref["loss"].get<double>(), std::sqrt(total),
        ref["grad_norm_after_clip"].get<double>(), worst_rel);
  }

  // lr 0 on step 1 (warm-up): the weights are unchanged, bit for bit.
  for (const auto& [name, t] : init) {
    EXPECT_TRUE(at::equal(after[0].at(name), t)) << name << " changed on step 1 (lr 0)";
  }
  for (int s : {2, 4}) {
    testing::ExpectWeightsMatch(Fixture(absl::StrCat("learner/sft_step/after", s, ".safetensors")),
                                s, after[s - 1], init, sensitive[s - 1],
                                {kWeightAbsTol, kSensitiveAbsTol, kWeightRelTol});
  }
}

}  // namespace
}  // namespace bpo::learner
