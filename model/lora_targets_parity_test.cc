// PEFT adapters whose target_modules are not short names load and match PEFT
// (fixtures: tests/fixtures/peft_targets on tests/fixtures/gemma):
//   all_linear/  made with target_modules="all-linear"; PEFT 0.18 saved the 14
//                full module names ("model.layers.0.mlp.down_proj", ...);
//   regex/       target_modules is one regular expression string selecting
//                q/v_proj of layer 0 and gate/down_proj of layer 1.
// Tolerance as model/lora_parity_test.cc: fp32 logits max |Δ| <= 1e-4 of the
// largest reference magnitude (measured: below 1e-6).
#include <ATen/core/grad_mode.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/lora.h"
#include "model/safetensors.h"

namespace bpo::model {
namespace {

std::string Fixture(const std::string& rest) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", rest);
}

at::Tensor Ref(const std::string& name) {
  auto file = SafetensorsFile::Open(Fixture("peft_targets/reference.safetensors"));
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

class LoraTargetsParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = CausalLm::Load(Fixture("gemma"));
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
  }
  // Logits of the model with the adapter in peft_targets/<name>, and its
  // relative error against PEFT's.
  double Check(const std::string& name, const LoraEnsemble& lora) {
    at::NoGradGuard no_grad;
    const at::Tensor ids = Ref("input_ids"), mask = Ref("attention_mask");
    const LoraMember member = lora.Member(0);
    const double err =
        RelErr(model_->ForwardLogits(ids, mask, &member), Ref(absl::StrCat("logits_", name)), mask);
    std::cout << name << ": max |Δ| / max |ref| = " << err << "\n";
    return err;
  }
  std::unique_ptr<CausalLm> model_;
};

TEST_F(LoraTargetsParityTest, AllLinearSavedAsFullModuleNames) {
  auto lora = LoraEnsemble::LoadPeft(*model_, {Fixture("peft_targets/all_linear")});
  ASSERT_TRUE(lora.ok()) << lora.status();
  EXPECT_EQ((*lora)->targets().size(), 14u);
  EXPECT_DOUBLE_EQ((*lora)->scaling(), 2.0);
  EXPECT_LE(Check("all_linear", **lora), 1e-4);
}

TEST_F(LoraTargetsParityTest, RegexStringSelectsSomeLayers) {
  auto lora = LoraEnsemble::LoadPeft(*model_, {Fixture("peft_targets/regex")});
  ASSERT_TRUE(lora.ok()) << lora.status();
  ASSERT_EQ((*lora)->targets().size(), 4u);
  EXPECT_GE((*lora)->Slot(0, LinearKind::kQ), 0);
  EXPECT_GE((*lora)->Slot(0, LinearKind::kV), 0);
  EXPECT_GE((*lora)->Slot(1, LinearKind::kGate), 0);
  EXPECT_GE((*lora)->Slot(1, LinearKind::kDown), 0);
  EXPECT_EQ((*lora)->Slot(1, LinearKind::kQ), -1);
  EXPECT_EQ((*lora)->Slot(0, LinearKind::kDown), -1);
  EXPECT_LE(Check("regex", **lora), 1e-4);

  // Saved again, only some layers of a kind are adapted: bpo writes the full
  // module names, which select the same layers when read back.
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("bpo_lora_targets_", getpid()))
          .string();
  ASSERT_TRUE((*lora)->SavePeft(0, dir, *model_).ok());
  auto back = LoraEnsemble::LoadPeft(*model_, {dir});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->slots(), (*lora)->slots());
  EXPECT_LE(Check("regex", **back), 1e-4);
  // Members may spell the same targets differently.
  auto both = LoraEnsemble::LoadPeft(*model_, {Fixture("peft_targets/regex"), dir});
  EXPECT_TRUE(both.ok()) << both.status();
  auto mixed = LoraEnsemble::LoadPeft(*model_, {Fixture("peft_targets/all_linear"), dir});
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mixed.status().message(),
            absl::StrCat(dir,
                         "/adapter_config.json: r, lora_alpha and the layers target_modules "
                         "selects must match ",
                         Fixture("peft_targets/all_linear")));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace bpo::model
