// DAP losses against TRL's DPOTrainer.dpo_loss (TRL 0.28.0, float64 fixtures
// from tests/fixtures/make_learner_fixtures.py): per-pair losses, rewards and
// the gradients of the mean loss w.r.t. all four log-prob inputs, within 1e-6.
#include <ATen/ATen.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "learner/losses.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace bpo::learner {
namespace {

std::string Fixture(const std::string& rest) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/learner/", rest);
}

TEST(LossParityTest, MatchesTrlLossesRewardsAndGradients) {
  auto file = model::SafetensorsFile::Open(Fixture("losses.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto get = [&](const std::string& name) { return (*(*file)->Tensor(name)).clone(); };
  std::ifstream in(Fixture("losses.json"));
  const nlohmann::json spec = nlohmann::json::parse(in);
  ASSERT_EQ(spec["cases"].size(), 6u);
  for (const auto& c : spec["cases"]) {
    const std::string name = c["name"];
    const std::string type = c["loss_type"];
    LossOptions o;
    o.type = type == "sigmoid" ? LossType::kDpo : type == "ipo" ? LossType::kIpo : LossType::kSlic;
    o.beta = c["beta"];
    o.label_smoothing = c["label_smoothing"];
    at::Tensor pc = get("policy_chosen_logps").set_requires_grad(true);
    at::Tensor pr = get("policy_rejected_logps").set_requires_grad(true);
    at::Tensor rc = get("ref_chosen_logps").set_requires_grad(true);
    at::Tensor rr = get("ref_rejected_logps").set_requires_grad(true);
    const LossOutput out = DapLoss(pc, pr, rc, rr, o);
    out.losses.mean().backward();
    auto max_diff = [](const at::Tensor& a, const at::Tensor& b) {
      return (a - b).abs().max().item<double>();
    };
    EXPECT_LE(max_diff(out.losses.detach(), get(name + "/losses")), 1e-6) << name;
    EXPECT_LE(max_diff(out.chosen_rewards, get(name + "/chosen_rewards")), 1e-6) << name;
    EXPECT_LE(max_diff(out.rejected_rewards, get(name + "/rejected_rewards")), 1e-6) << name;
    EXPECT_LE(max_diff(pc.grad(), get(name + "/grad_policy_chosen")), 1e-6) << name;
    EXPECT_LE(max_diff(pr.grad(), get(name + "/grad_policy_rejected")), 1e-6) << name;
    EXPECT_LE(max_diff(rc.grad(), get(name + "/grad_ref_chosen")), 1e-6) << name;
    EXPECT_LE(max_diff(rr.grad(), get(name + "/grad_ref_rejected")), 1e-6) << name;
  }
}

}  // namespace
}  // namespace bpo::learner
