#include "model/hf_config.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace bpo::model {
namespace {

const char* kLlama = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10,
  "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
  "num_attention_heads": 2, "num_key_value_heads": 1, "eos_token_id": [2, 5]})";

TEST(HfConfigTest, ReadsLlamaWithDefaults) {
  auto c = ParseCausalLmConfig(kLlama, "c.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Architecture::kLlama);
  EXPECT_EQ(c->head_dim, 4);
  EXPECT_EQ(c->activation, Activation::kSilu);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->eos_token_id, 2);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{2, 5}));
}

TEST(HfConfigTest, Gemma2LayerTypes) {
  auto c = ParseCausalLmConfig(R"({"architectures": ["Gemma2ForCausalLM"], "vocab_size": 10,
    "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2,
    "head_dim": 4, "sliding_window": 4, "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0, "query_pre_attn_scalar": 8})",
                               "c.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_TRUE(c->sandwich_norms);
  EXPECT_EQ(c->layer_is_sliding, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(c->activation, Activation::kGeluTanh);
}

TEST(HfConfigTest, UnsupportedOptionsAreErrors) {
  std::string scaled = kLlama;
  scaled.insert(scaled.size() - 1, R"(, "rope_scaling": {"type": "linear", "factor": 2.0})");
  EXPECT_EQ(ParseCausalLmConfig(scaled, "c.json").status().message(),
            "c.json: rope_scaling: {\"factor\":2.0,\"type\":\"linear\"} is not supported (only "
            "unscaled RoPE is implemented)");
  EXPECT_EQ(ParseCausalLmConfig(R"({"architectures": ["MistralForCausalLM"]})", "c.json")
                .status()
                .message(),
            "c.json: architectures: unsupported architecture 'MistralForCausalLM' (supported: "
            "LlamaForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM)");
  EXPECT_EQ(ParseCausalLmConfig(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": "10"})",
                                "c.json")
                .status()
                .message(),
            "c.json: vocab_size: expected an integer, got \"10\"");
  EXPECT_EQ(
      ParseCausalLmConfig(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10})", "c.json")
          .status()
          .message(),
      "c.json: hidden_size: missing");
  std::string act = kLlama;
  act.insert(act.size() - 1, R"(, "hidden_act": "relu")");
  EXPECT_EQ(ParseCausalLmConfig(act, "c.json").status().message(),
            "c.json: hidden_act: unsupported activation 'relu' (supported: silu, swish; gelu, "
            "gelu_python (exact erf GELU); gelu_pytorch_tanh, gelu_python_tanh, gelu_new, "
            "gelu_fast (tanh approximation))");
  EXPECT_EQ(ParseCausalLmConfig("[]", "c.json").status().message(), "c.json: not a JSON object");
}

// The activation is the one transformers 4.57 runs: LlamaMLP and GemmaMLP
// read hidden_act, Gemma2MLP reads hidden_activation; "gelu" is exact.
TEST(HfConfigTest, ActivationKeyAndDefaultPerArchitecture) {
  struct Case {
    const char* arch;
    const char* extra;
    Activation want;
  };
  const Case cases[] = {
      {"LlamaForCausalLM", "", Activation::kSilu},
      {"LlamaForCausalLM", R"("hidden_act": "gelu")", Activation::kGelu},
      {"LlamaForCausalLM", R"("hidden_act": "gelu_new")", Activation::kGeluTanh},
      {"LlamaForCausalLM", R"("hidden_activation": "gelu")", Activation::kSilu},
      {"GemmaForCausalLM", "", Activation::kGeluTanh},
      {"GemmaForCausalLM", R"("hidden_act": "gelu")", Activation::kGelu},
      // google/gemma-2b's config.json: transformers 4.57 runs exact GELU.
      {"GemmaForCausalLM", R"("hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh")",
       Activation::kGelu},
      {"GemmaForCausalLM", R"("hidden_activation": "gelu")", Activation::kGeluTanh},
      {"GemmaForCausalLM", R"("hidden_act": "gelu_pytorch_tanh", "hidden_activation": null)",
       Activation::kGeluTanh},
      {"Gemma2ForCausalLM", "", Activation::kGeluTanh},
      {"Gemma2ForCausalLM", R"("hidden_activation": "gelu")", Activation::kGelu},
      {"Gemma2ForCausalLM", R"("hidden_act": "gelu")", Activation::kGeluTanh},
  };
  for (const Case& t : cases) {
    std::string json = absl::StrCat(R"({"architectures": [")", t.arch,
                                    R"("], "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "head_dim": 4)",
                                    *t.extra ? ", " : "", t.extra, "}");
    auto c = ParseCausalLmConfig(json, "c.json");
    ASSERT_TRUE(c.ok()) << t.arch << " " << t.extra << ": " << c.status();
    EXPECT_EQ(c->activation, t.want) << t.arch << " " << t.extra;
  }
  auto null_act = ParseCausalLmConfig(
      R"({"architectures": ["Gemma2ForCausalLM"], "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
      "hidden_activation": null})",
      "c.json");
  EXPECT_EQ(null_act.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(null_act.status().message(),
            "c.json: hidden_activation: is null; Gemma2ForCausalLM needs an activation name here "
            "(transformers has no default for null)");
  auto number = ParseCausalLmConfig(
      R"({"architectures": ["GemmaForCausalLM"], "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
      "hidden_act": 3})",
      "c.json");
  EXPECT_EQ(number.status().message(), "c.json: hidden_act: expected a string, got 3");
}

}  // namespace
}  // namespace bpo::model
