#include "model/hf_config.h"

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
            "c.json: hidden_activation: unsupported activation 'relu'");
  EXPECT_EQ(ParseCausalLmConfig("[]", "c.json").status().message(), "c.json: not a JSON object");
}

}  // namespace
}  // namespace bpo::model
