// LoRA ensembles against PEFT (fixtures: tests/fixtures/{llama,gemma}/lora):
// member forward, both merge modes, PEFT import/export, merge into weights.
// Tolerance: fp32 logits max |Δ| <= 1e-4 relative to the largest magnitude.
#include <ATen/core/grad_mode.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/lora.h"
#include "model/safetensors.h"

namespace bpo::model {
namespace {

std::string Fixture(const std::string& arch, const std::string& rest = "") {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", arch, rest);
}

at::Tensor Ref(const std::string& arch, const std::string& name) {
  auto file = SafetensorsFile::Open(Fixture(arch, "/reference.safetensors"));
  EXPECT_TRUE(file.ok()) << file.status();
  auto t = (*file)->Tensor(name);
  EXPECT_TRUE(t.ok()) << t.status();
  return t->clone();
}

double RelErr(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  const at::Tensor m = mask.to(at::kBool);
  const at::Tensor db = b.index({m});
  return (a.index({m}) - db).abs().max().item<double>() / db.abs().max().item<double>();
}

class LoraParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto model = CausalLm::Load(Fixture(GetParam()));
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    std::vector<std::string> dirs;
    for (int i = 0; i < 3; ++i)
      dirs.push_back(Fixture(GetParam(), absl::StrCat("/lora/member", i)));
    auto lora = LoraEnsemble::LoadPeft(*model_, dirs);
    ASSERT_TRUE(lora.ok()) << lora.status();
    lora_ = std::move(*lora);
    ids_ = Ref(GetParam(), "input_ids");
    mask_ = Ref(GetParam(), "attention_mask");
  }
  at::Tensor Logits(const LinearAdapter* adapter) {
    at::NoGradGuard no_grad;
    return model_->ForwardLogits(ids_, mask_, adapter);
  }
  std::unique_ptr<CausalLm> model_;
  std::unique_ptr<LoraEnsemble> lora_;
  at::Tensor ids_, mask_;
};

TEST_P(LoraParityTest, MemberAndBaseMatchPeft) {
  EXPECT_EQ(lora_->members(), 3);
  EXPECT_EQ(lora_->targets().size(), static_cast<size_t>(7 * model_->config().num_layers));
  EXPECT_DOUBLE_EQ(lora_->scaling(), 2.0);
  const LoraMember m0 = lora_->Member(0);
  EXPECT_LE(RelErr(Logits(&m0), Ref(GetParam(), "logits_member0"), mask_), 1e-4);
  EXPECT_LE(RelErr(Logits(nullptr), Ref(GetParam(), "logits_base"), mask_), 1e-4);
}

TEST_P(LoraParityTest, BothMergeModesMatch) {
  const MergedLora mean_delta = lora_->Merge(MergeMode::kMeanDelta);
  const MergedLora peft_linear = lora_->Merge(MergeMode::kPeftLinear);
  EXPECT_EQ(mean_delta.rank(), 12);
  EXPECT_EQ(peft_linear.rank(), 4);
  const double e_mean = RelErr(Logits(&mean_delta), Ref(GetParam(), "logits_mean_delta"), mask_);
  const double e_peft = RelErr(Logits(&peft_linear), Ref(GetParam(), "logits_peft_linear"), mask_);
  std::cout << GetParam() << ": mean_delta " << e_mean << ", peft_linear " << e_peft << "\n";
  EXPECT_LE(e_mean, 1e-4);
  EXPECT_LE(e_peft, 1e-4);
  // The two modes really differ (cross terms).
  EXPECT_GT(
      RelErr(Ref(GetParam(), "logits_mean_delta"), Ref(GetParam(), "logits_peft_linear"), mask_),
      1e-3);
}

TEST_P(LoraParityTest, PeftsOwnMergedAdapterLoadsAndMatchesOurMerge) {
  auto peft = LoraEnsemble::LoadPeft(*model_, {Fixture(GetParam(), "/lora/peft_linear")});
  ASSERT_TRUE(peft.ok()) << peft.status();
  const MergedLora ours = lora_->Merge(MergeMode::kPeftLinear);
  double max_err = 0;
  for (size_t t = 0; t < lora_->targets().size(); ++t) {
    const at::Tensor theirs =
        at::matmul((*peft)->B(0, static_cast<int>(t)), (*peft)->A(0, static_cast<int>(t))) *
        (*peft)->scaling();
    const at::Tensor mine = at::matmul(ours.b()[t], ours.a()[t]);
    max_err = std::max(
        max_err, (theirs - mine).abs().max().item<double>() / theirs.abs().max().item<double>());
  }
  EXPECT_LE(max_err, 1e-5);
  const LoraMember merged = (*peft)->Member(0);
  EXPECT_LE(RelErr(Logits(&merged), Ref(GetParam(), "logits_peft_linear"), mask_), 1e-4);
}

TEST_P(LoraParityTest, SaveLoadAndExportRoundTrip) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           absl::StrCat("bpo_lora_", GetParam(), "_", getpid()))
                              .string();
  ASSERT_TRUE(lora_->SavePeft(1, dir + "/m1", *model_).ok());
  auto back = LoraEnsemble::LoadPeft(*model_, {dir + "/m1"});
  ASSERT_TRUE(back.ok()) << back.status();
  for (size_t t = 0; t < lora_->targets().size(); ++t) {
    ASSERT_TRUE(at::equal((*back)->A(0, t), lora_->A(1, t)));
    ASSERT_TRUE(at::equal((*back)->B(0, t), lora_->B(1, t)));
  }
  for (MergeMode mode : {MergeMode::kMeanDelta, MergeMode::kPeftLinear}) {
    const std::string out = dir + "/" + MergeModeName(mode);
    ASSERT_TRUE(lora_->ExportMergedPeft(mode, out, *model_).ok());
    auto exported = LoraEnsemble::LoadPeft(*model_, {out});
    ASSERT_TRUE(exported.ok()) << exported.status();
    const LoraMember as_one = (*exported)->Member(0);
    const std::string ref =
        mode == MergeMode::kMeanDelta ? "logits_mean_delta" : "logits_peft_linear";
    EXPECT_LE(RelErr(Logits(&as_one), Ref(GetParam(), ref), mask_), 1e-4) << MergeModeName(mode);
  }
  std::filesystem::remove_all(dir);
}

TEST_P(LoraParityTest, MergeIntoWeightsAndUnmerge) {
  const at::Tensor base = Logits(nullptr);
  const MergedLora merged = lora_->Merge(MergeMode::kMeanDelta);
  LoraEnsemble::MergeInto(merged, lora_->targets(), model_.get());
  EXPECT_LE(RelErr(Logits(nullptr), Ref(GetParam(), "logits_mean_delta"), mask_), 1e-4);
  LoraEnsemble::Unmerge(merged, lora_->targets(), model_.get());
  EXPECT_LE(RelErr(Logits(nullptr), base, mask_), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Architectures, LoraParityTest, ::testing::Values("llama", "gemma"));

TEST(LoraTest, FreshMembersStartAtTheBaseAndTrainAlone) {
  auto model = CausalLm::Load(Fixture("llama"));
  ASSERT_TRUE(model.ok());
  LoraOptions options;
  options.members = 2;
  options.rank = 2;
  options.alpha = 4;
  options.dropout = 0;
  options.target_modules = {"q_proj", "v_proj"};
  options.seed = 5;
  auto lora = LoraEnsemble::Create(**model, options);
  ASSERT_TRUE(lora.ok()) << lora.status();
  EXPECT_EQ((*lora)->targets().size(), static_cast<size_t>(2 * (*model)->config().num_layers));
  EXPECT_FALSE(at::equal((*lora)->A(0, 0), (*lora)->A(1, 0)));  // own seeds
  const at::Tensor ids = Ref("llama", "input_ids"), mask = Ref("llama", "attention_mask");
  const LoraMember m0 = (*lora)->Member(0, /*training=*/true);
  const at::Tensor logits = (*model)->ForwardLogits(ids, mask, &m0);
  // B starts at zero, so the member starts exactly at the base model.
  EXPECT_TRUE(at::allclose(logits.detach(), Ref("llama", "logits_base"), 1e-5, 1e-5));
  logits.index({mask.to(at::kBool)}).sum().backward();
  EXPECT_GT((*lora)->B(0, 0).grad().abs().sum().item<float>(), 0);
  EXPECT_FALSE((*lora)->B(1, 0).grad().defined());  // the other member is untouched
  EXPECT_THAT(
      std::string(LoraEnsemble::Create(**model, {.target_modules = {"qkv"}}).status().message()),
      ::testing::StartsWith("LoRA target module 'qkv' matches no linear layer of "
                            "LlamaForCausalLM with 3 layers (allowed: "));
}

}  // namespace
}  // namespace bpo::model
