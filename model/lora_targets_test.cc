// target_modules in every form PEFT 0.18 writes, matched as PEFT matches them.
#include "model/lora_targets.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kLayers = 2;

// The selected (layer, kind) pairs as full module names.
std::vector<std::string> Selected(const LoraTargetModules& targets) {
  auto mask = SelectLoraTargets(targets, Architecture::kLlama, kLayers);
  EXPECT_TRUE(mask.ok()) << mask.status();
  if (!mask.ok()) return {};
  std::vector<std::string> out;
  for (int64_t l = 0; l < kLayers; ++l) {
    for (int k = 0; k < kNumLinearKinds; ++k) {
      if ((*mask)[l * kNumLinearKinds + k]) {
        out.push_back(LinearModuleName(l, static_cast<LinearKind>(k)));
      }
    }
  }
  return out;
}

absl::Status ErrorOf(const LoraTargetModules& targets) {
  return SelectLoraTargets(targets, Architecture::kLlama, kLayers).status();
}

TEST(LoraTargetsTest, ModuleNamesAreHuggingFaces) {
  EXPECT_EQ(LinearModuleName(0, LinearKind::kQ), "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(LinearModuleName(11, LinearKind::kDown), "model.layers.11.mlp.down_proj");
}

TEST(LoraTargetsTest, ShortNamesSelectThatKindInEveryLayer) {
  EXPECT_THAT(Selected({{"v_proj", "q_proj"}}),
              ElementsAre("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                          "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"));
}

TEST(LoraTargetsTest, FullNamesAndSuffixesSelectWhatTheyName) {
  // PEFT 0.18 writes "all-linear" adapters this way.
  std::vector<std::string> all;
  for (int64_t l = 0; l < kLayers; ++l) {
    for (int k = kNumLinearKinds - 1; k >= 0; --k) {
      all.push_back(LinearModuleName(l, static_cast<LinearKind>(k)));
    }
  }
  EXPECT_EQ(Selected({all}).size(), static_cast<size_t>(kLayers * kNumLinearKinds));
  EXPECT_THAT(Selected({{"model.layers.1.mlp.down_proj", "layers.0.self_attn.o_proj"}}),
              ElementsAre("model.layers.0.self_attn.o_proj", "model.layers.1.mlp.down_proj"));
  EXPECT_THAT(Selected({{"mlp.up_proj"}}),
              ElementsAre("model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"));
  // A suffix must end at a dot: "proj" is no module's last name.
  EXPECT_THAT(ErrorOf({{"proj"}}).message(), HasSubstr("'proj' matches no linear layer"));
}

TEST(LoraTargetsTest, AllLinearAsStringOrEntry) {
  for (const LoraTargetModules& t :
       {LoraTargetModules{{}, "all-linear"}, LoraTargetModules{{}, "ALL-LINEAR"},
        LoraTargetModules{{"all-linear"}, ""}}) {
    EXPECT_EQ(Selected(t).size(), static_cast<size_t>(kLayers * kNumLinearKinds));
  }
}

TEST(LoraTargetsTest, AStringIsARegexOnTheWholeName) {
  EXPECT_THAT(Selected({{}, R"(.*\.1\.self_attn\.(q|v)_proj)"}),
              ElementsAre("model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"));
  EXPECT_THAT(Selected({{}, ".*mlp.*"}).size(), 3u * kLayers);
  // re.fullmatch: "q_proj" alone matches no full name.
  EXPECT_EQ(ErrorOf({{}, "q_proj"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf({{}, "q_proj"}).message(),
            "LoRA target_modules: the regular expression 'q_proj' matches no linear layer of "
            "LlamaForCausalLM (allowed: the linear layers of LlamaForCausalLM's decoder layers, by "
            "short name (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), suffix "
            "(mlp.down_proj) or full name (model.layers.N.self_attn.q_proj, N in [0, 2)), "
            "'all-linear', or one regular expression string)");
}

TEST(LoraTargetsTest, WrongModulesAreNamedWithWhatIsAllowed) {
  EXPECT_EQ(ErrorOf({{"q_proj", "qkv"}}).message(),
            "LoRA target module 'qkv' matches no linear layer of LlamaForCausalLM with 2 layers "
            "(allowed: the linear layers of LlamaForCausalLM's decoder layers, by short name "
            "(q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), suffix "
            "(mlp.down_proj) or full name (model.layers.N.self_attn.q_proj, N in [0, 2)), "
            "'all-linear', or one regular expression string)");
  EXPECT_THAT(ErrorOf({{"model.layers.2.mlp.down_proj"}}).message(),
              HasSubstr("'model.layers.2.mlp.down_proj' matches no linear layer"));
  EXPECT_THAT(ErrorOf({{"q_proj", "lm_head"}}).message(),
              HasSubstr("LoRA target module 'lm_head' is not supported: bpo cannot adapt lm_head"));
  EXPECT_THAT(ErrorOf({{"embed_tokens"}}).message(),
              HasSubstr("bpo cannot adapt model.embed_tokens"));
  EXPECT_THAT(ErrorOf({{}, ".*(q_proj|lm_head)"}).message(),
              HasSubstr("the regular expression '.*(q_proj|lm_head)' selects 'lm_head'"));
  EXPECT_THAT(ErrorOf({{}, "(?P<x>.*)"}).message(),
              HasSubstr("is not a regular expression bpo can read"));
  EXPECT_THAT(ErrorOf({{}, ""}).message(), HasSubstr("LoRA target_modules: empty"));
}

TEST(LoraTargetsTest, NamesForAMaskRoundTrip) {
  std::vector<bool> mask(kLayers * kNumLinearKinds, false);
  for (int64_t l = 0; l < kLayers; ++l) {
    mask[l * kNumLinearKinds + static_cast<int>(LinearKind::kV)] = true;
    mask[l * kNumLinearKinds + static_cast<int>(LinearKind::kQ)] = true;
  }
  EXPECT_THAT(LoraTargetModuleNames(mask, kLayers), ElementsAre("q_proj", "v_proj"));
  mask[1 * kNumLinearKinds + static_cast<int>(LinearKind::kDown)] = true;
  const std::vector<std::string> names = LoraTargetModuleNames(mask, kLayers);
  EXPECT_THAT(names,
              ElementsAre("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                          "model.layers.1.mlp.down_proj", "model.layers.1.self_attn.q_proj",
                          "model.layers.1.self_attn.v_proj"));
  auto back = SelectLoraTargets({names}, Architecture::kLlama, kLayers);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, mask);
}

}  // namespace
}  // namespace bpo::model
