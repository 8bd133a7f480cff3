// Two full training steps of a LoRA member on the tiny random Gemma fixture
// against PyTorch + PEFT (tests/fixtures/learner/train_step, from
// make_learner_fixtures.py): DPO against the SFT reference, sum log-probs,
// AdamW (lr 1e-2, eps 1e-6), clipping at 1.0 (active on step 1), linear decay
// over 10 steps. Adapter weights after each step within 1e-5 (a missing clip
// would move them by up to 1.5e-4).
#include <ATen/ATen.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "learner/trainer.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace bpo::learner {
namespace {

std::string Fixture(const std::string& rest) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", rest);
}

TEST(TrainStepParityTest, TwoStepsMatchPytorchAndPeft) {
  auto model = model::CausalLm::Load(Fixture("gemma"));
  ASSERT_TRUE(model.ok()) << model.status();
  auto lora = model::LoraEnsemble::LoadPeft(**model, {Fixture("learner/train_step/init")});
  ASSERT_TRUE(lora.ok()) << lora.status();
  auto batch_file = model::SafetensorsFile::Open(Fixture("learner/train_step/batch.safetensors"));
  ASSERT_TRUE(batch_file.ok());
  PairBatch batch;
  batch.input_ids = (*(*batch_file)->Tensor("input_ids")).clone();
  batch.attention_mask = (*(*batch_file)->Tensor("attention_mask")).clone();
  batch.response_mask = (*(*batch_file)->Tensor("response_mask")).clone();
  batch.behavior_versions.assign(batch.pairs(), 0);
  std::ifstream in(Fixture("learner/train_step/steps.json"));
  const nlohmann::json steps = nlohmann::json::parse(in)["steps"];

  TrainerOptions o;
  o.reference = ReferenceMode::kSft;
  o.loss.beta = 0.1;
  o.learning_rate = 1e-2;
  o.total_steps = 10;
  o.grad_clip = 1.0;
  EnsembleTrainer trainer(model->get(), lora->get(), o);
  for (int s = 1; s <= 2; ++s) {
    auto m = trainer.Step(batch);
    ASSERT_TRUE(m.ok()) << m.status();
    const auto& ref = steps[s - 1];
    EXPECT_NEAR(m->loss, ref["loss"].get<double>(), 1e-5) << "step " << s;
    EXPECT_NEAR(m->member_grad_norm[0], ref["grad_norm"].get<double>(), 1e-5) << "step " << s;
    EXPECT_DOUBLE_EQ(m->learning_rate, ref["lr"].get<double>());
    auto expected = model::LoraEnsemble::LoadPeft(
        **model, {Fixture(absl::StrCat("learner/train_step/after", s))});
    ASSERT_TRUE(expected.ok()) << expected.status();
    double worst = 0;
    for (size_t t = 0; t < (*lora)->targets().size(); ++t) {
      worst = std::max(worst, ((*lora)->A(0, t) - (*expected)->A(0, t)).abs().max().item<double>());
      worst = std::max(worst, ((*lora)->B(0, t) - (*expected)->B(0, t)).abs().max().item<double>());
    }
    std::printf("step %d: loss %.6f, grad norm %.5f, max |param - PEFT| = %.3g\n", s, m->loss,
                m->member_grad_norm[0], worst);
    EXPECT_LE(worst, 1e-5) << "step " << s;
  }
}

}  // namespace
}  // namespace bpo::learner
