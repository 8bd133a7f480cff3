// Numerical parity of the DeBERTa-v3 reward model with Hugging Face
// transformers' DebertaV2ForSequenceClassification (num_labels 1) on a small
// random model (fixture tests/fixtures/deberta from make_fixtures.py; versions
// pinned in tests/fixtures/requirements.txt). Four right-padded pairs of
// length <= 40, so log-bucketed relative positions are exercised.
//
// Tolerances (max |Δ| relative to the largest |reference score|):
//   fp32 scores: 1e-4;
//   bf16 scores: error against the fp32 reference at most 1.5x that of HF's
//   own bf16 model, and within 3e-2 of HF's bf16 scores (bf16 keeps 8 bits of
//   mantissa and BLAS sums in different orders; measured values are printed);
//   relative position buckets: identical to HF's make_log_bucket_position.
#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/deberta.h"
#include "model/fixture_testing.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace bpo::model {
namespace {

using fixtures::FixtureDir;
using fixtures::Reference;
using fixtures::RelativeError;

nlohmann::json ReferenceJson() {
  std::ifstream in(FixtureDir("deberta") + "/reference.json");
  EXPECT_TRUE(in.good());
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

TEST(DebertaConfigTest, ReadsTheFixture) {
  auto c = LoadDebertaConfig(FixtureDir("deberta"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vocab_size, 328);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->num_layers, 2);
  EXPECT_EQ(c->num_heads, 4);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->intermediate_size, 128);
  EXPECT_EQ(c->type_vocab_size, 0);
  EXPECT_EQ(c->position_buckets, 8);
  EXPECT_EQ(c->max_relative_positions, 128);  // -1 -> max_position_embeddings
  EXPECT_EQ(c->att_span, 8);
  EXPECT_TRUE(c->share_att_key);
  EXPECT_TRUE(c->norm_rel_ebd_layer_norm);
  EXPECT_FALSE(c->position_biased_input);
  EXPECT_TRUE(c->c2p);
  EXPECT_TRUE(c->p2c);
  EXPECT_EQ(c->num_labels, 1);
  EXPECT_DOUBLE_EQ(c->layer_norm_eps, 1e-7);
  EXPECT_EQ(c->act, Activation::kGelu);
  EXPECT_EQ(c->pooler_act, Activation::kGelu);
}

TEST(DebertaConfigTest, UnsupportedOptionsAreErrorsNamingTheKey) {
  std::ifstream in(FixtureDir("deberta") + "/config.json");
  const nlohmann::json base = nlohmann::json::parse(in);
  const auto parse_with = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json j = base;
    j[key] = value;
    return ParseDebertaConfig(j.dump(), "cfg.json").status();
  };
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"share_att_key", false},        {"relative_attention", false},
      {"position_biased_input", true}, {"pos_att_type", {"c2p", "p2p"}},
      {"norm_rel_ebd", "batch_norm"},  {"hidden_act", "mish"},
      {"embedding_size", 32},          {"conv_kernel_size", 3},
      {"pooler_hidden_size", 32},      {"id2label", {{"0", "A"}, {"1", "B"}}},
  };
  for (const auto& [key, value] : cases) {
    const absl::Status s = parse_with(key, value);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << key << ": " << s;
    EXPECT_NE(s.message().find(absl::StrCat("cfg.json: ", key, ":")), std::string::npos) << s;
  }
  // The legacy "p2c|c2p" string form is accepted.
  nlohmann::json legacy = base;
  legacy["pos_att_type"] = "P2C | c2p";
  auto c = ParseDebertaConfig(legacy.dump(), "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->c2p && c->p2c);
}

TEST(DebertaBucketsTest, MatchHuggingFaceTable) {
  const nlohmann::json ref = ReferenceJson();
  ASSERT_FALSE(ref.is_discarded());
  const auto& table = ref["relative_position_buckets"];
  const std::vector<int64_t> rel = table["rel"].get<std::vector<int64_t>>();
  const std::vector<int64_t> bucket = table["bucket"].get<std::vector<int64_t>>();
  const int64_t bucket_size = table["bucket_size"].get<int64_t>();
  const int64_t max_position = table["max_position"].get<int64_t>();
  ASSERT_EQ(rel.size(), bucket.size());
  ASSERT_FALSE(rel.empty());
  // rel runs over -(L - 1) .. L - 1: the first row of [L, L] holds 0, -1, ..,
  // -(L - 1) and the first column 0, 1, .., L - 1.
  const int64_t L = (static_cast<int64_t>(rel.size()) + 1) / 2;
  const at::Tensor b = RelativePositionBuckets(L, L, bucket_size, max_position);
  ASSERT_EQ(b.sizes(), (std::vector<int64_t>{L, L}));
  for (size_t n = 0; n < rel.size(); ++n) {
    const int64_t i = rel[n] >= 0 ? rel[n] : 0, j = rel[n] >= 0 ? 0 : -rel[n];
    EXPECT_EQ(b[i][j].item<int64_t>(), bucket[n]) << "relative position " << rel[n];
  }
  // Every entry depends only on i - j.
  for (int64_t i = 0; i < L; ++i) {
    for (int64_t j = 0; j < L; ++j) {
      ASSERT_EQ(b[i][j].item<int64_t>(), bucket[i - j + L - 1]) << i << ", " << j;
    }
  }
  // No bucketing: plain distances.
  EXPECT_TRUE(at::equal(RelativePositionBuckets(3, 3, -1, 128),
                        at::arange(3).view({3, 1}) - at::arange(3).view({1, 3})));
}

TEST(DebertaParityTest, Fp32ScoresMatch) {
  const Reference ref("deberta");
  ASSERT_TRUE(ref.ok());
  auto model = DebertaRewardModel::Load(FixtureDir("deberta"));
  ASSERT_TRUE(model.ok()) << model.status();
  auto scores = (*model)->Score(ref["input_ids"], ref["attention_mask"], ref["token_type_ids"]);
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->sizes(), (std::vector<int64_t>{4}));
  EXPECT_EQ(scores->scalar_type(), at::kFloat);
  const double err = RelativeError(*scores, ref["scores"]);
  RecordProperty("fp32_relative_error", std::to_string(err));
  std::cout << "deberta fp32 scores: ours " << *scores << " HF " << ref["scores"]
            << " max rel |delta| = " << err << "\n";
  EXPECT_LE(err, 1e-4);
  // type_vocab_size is 0: token_type_ids change nothing.
  auto without_types = (*model)->Score(ref["input_ids"], ref["attention_mask"]);
  ASSERT_TRUE(without_types.ok()) << without_types.status();
  EXPECT_TRUE(at::equal(*without_types, *scores));
}

TEST(DebertaParityTest, PaddingDoesNotChangeScores) {
  const Reference ref("deberta");
  ASSERT_TRUE(ref.ok());
  auto model = DebertaRewardModel::Load(FixtureDir("deberta"));
  ASSERT_TRUE(model.ok()) << model.status();
  const at::Tensor ids = ref["input_ids"], mask = ref["attention_mask"];
  const at::Tensor expected = ref["scores"];
  for (int64_t n = 0; n < ids.size(0); ++n) {
    const int64_t len = mask[n].sum().item<int64_t>();
    auto alone = (*model)->Score(ids.narrow(0, n, 1).narrow(1, 0, len),
                                 mask.narrow(0, n, 1).narrow(1, 0, len));
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_LE(std::abs((*alone)[0].item<double>() - expected[n].item<double>()),
              1e-4 * expected.abs().max().item<double>())
        << "row " << n << " unpadded";
  }
}

TEST(DebertaParityTest, Bf16ScoresMatch) {
  const Reference ref("deberta");
  ASSERT_TRUE(ref.ok());
  auto model = DebertaRewardModel::Load(FixtureDir("deberta"), {at::kBFloat16, at::kCPU});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->options().dtype(), at::kBFloat16);
  auto scores = (*model)->Score(ref["input_ids"], ref["attention_mask"], ref["token_type_ids"]);
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_EQ(scores->scalar_type(), at::kFloat);
  // bf16 rounding differs with summation order, so the bound is stated
  // against the fp32 truth: our bf16 model must be as accurate as HF's bf16
  // model (within 1.5x of its error), and close to it.
  const double vs_hf = RelativeError(*scores, ref["scores_bf16"]);
  const double ours = RelativeError(*scores, ref["scores"]);
  const double theirs = RelativeError(ref["scores_bf16"], ref["scores"]);
  RecordProperty("bf16_relative_error", std::to_string(ours));
  std::cout << "deberta bf16: ours " << *scores << " HF bf16 " << ref["scores_bf16"]
            << " ours vs fp32 " << ours << ", HF bf16 vs fp32 " << theirs << ", ours vs HF bf16 "
            << vs_hf << "\n";
  EXPECT_LE(ours, 1.5 * theirs);
  EXPECT_LE(vs_hf, 3e-2);
}

// Same bounds on a GPU, where the bf16 kernels accumulate in float32 (no upcast).
TEST(DebertaParityTest, CudaScoresMatch) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const Reference ref("deberta");
  ASSERT_TRUE(ref.ok());
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    auto model = DebertaRewardModel::Load(FixtureDir("deberta"), {dtype, at::kCUDA});
    ASSERT_TRUE(model.ok()) << model.status();
    auto scores = (*model)->Score(ref["input_ids"], ref["attention_mask"], ref["token_type_ids"]);
    ASSERT_TRUE(scores.ok()) << scores.status();
    ASSERT_TRUE(scores->is_cuda());
    const at::Tensor s = scores->cpu();
    if (dtype == at::kFloat) {
      const double err = RelativeError(s, ref["scores"]);
      std::cout << "deberta cuda fp32: max rel |delta| = " << err << "\n";
      EXPECT_LE(err, 1e-4);
    } else {
      const double ours = RelativeError(s, ref["scores"]);
      const double theirs = RelativeError(ref["scores_bf16"], ref["scores"]);
      const double vs_hf = RelativeError(s, ref["scores_bf16"]);
      std::cout << "deberta cuda bf16: ours vs fp32 " << ours << ", HF bf16 vs fp32 " << theirs
                << ", ours vs HF bf16 " << vs_hf << "\n";
      EXPECT_LE(ours, 1.5 * theirs);
      EXPECT_LE(vs_hf, 3e-2);
    }
  }
}

TEST(DebertaLoadTest, ErrorsNameTheFileAndKey) {
  auto missing = DebertaRewardModel::Load("/nonexistent");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "/nonexistent: no such model directory or file");
  auto llama = DebertaRewardModel::Load(FixtureDir("llama"));
  EXPECT_EQ(llama.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(llama.status().message(),
            FixtureDir("llama") +
                "/config.json: architectures: unsupported architecture 'LlamaForCausalLM' "
                "(supported: DebertaV2ForSequenceClassification)");
  EXPECT_EQ(
      DebertaRewardModel::Load(FixtureDir("deberta"), {at::kHalf, at::kCPU}).status().message(),
      FixtureDir("deberta") + ": unsupported dtype Half (float32 or bfloat16)");
}

// Rewrites the fixture's checkpoint with `edit` applied into a fresh directory.
std::string EditedCheckpoint(
    const std::string& name,
    const std::function<void(std::vector<std::pair<std::string, at::Tensor>>*)>& edit) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(FixtureDir("deberta") + "/config.json", dir / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  auto file = SafetensorsFile::Open(FixtureDir("deberta") + "/model.safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const TensorInfo& t : (*file)->header().tensors) {
    tensors.emplace_back(t.name, (*file)->Tensor(t.name)->clone());
  }
  edit(&tensors);
  const absl::Status written = WriteSafetensors((dir / "model.safetensors").string(), tensors);
  EXPECT_TRUE(written.ok()) << written;
  return dir.string();
}

TEST(DebertaLoadTest, CheckpointMismatchesNameTheTensor) {
  using Tensors = std::vector<std::pair<std::string, at::Tensor>>;
  const std::string missing = EditedCheckpoint("deberta_missing", [](Tensors* t) {
    t->erase(std::remove_if(t->begin(), t->end(),
                            [](const auto& p) { return p.first == "classifier.bias"; }),
             t->end());
  });
  auto m = DebertaRewardModel::Load(missing);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(m.status().message(), missing + ": missing tensor 'classifier.bias'");

  const std::string misshapen = EditedCheckpoint("deberta_misshapen", [](Tensors* t) {
    for (auto& [name, tensor] : *t) {
      if (name == "deberta.encoder.rel_embeddings.weight") tensor = tensor.narrow(0, 0, 8);
    }
  });
  m = DebertaRewardModel::Load(misshapen);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(), misshapen +
                                      "/model.safetensors: tensor "
                                      "'deberta.encoder.rel_embeddings.weight' has shape [8, 64] "
                                      "but config.json implies [16, 64]");

  const std::string extra = EditedCheckpoint("deberta_extra", [](Tensors* t) {
    t->emplace_back("lm_predictions.lm_head.bias", at::zeros({328}));
  });
  m = DebertaRewardModel::Load(extra);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(), extra +
                                      "/model.safetensors: unexpected tensor "
                                      "'lm_predictions.lm_head.bias' for "
                                      "DebertaV2ForSequenceClassification as config.json "
                                      "describes it");

  // Like HF, stored absolute position embeddings are ignored.
  const std::string positions = EditedCheckpoint("deberta_positions", [](Tensors* t) {
    t->emplace_back("deberta.embeddings.position_embeddings.weight", at::zeros({128, 64}));
  });
  m = DebertaRewardModel::Load(positions);
  EXPECT_TRUE(m.ok()) << m.status();
}

TEST(DebertaScoreTest, BadInputsAreInvalidArgument) {
  auto model = DebertaRewardModel::Load(FixtureDir("deberta"));
  ASSERT_TRUE(model.ok()) << model.status();
  const at::Tensor ids = at::ones({2, 5}, at::kLong), mask = at::ones({2, 5}, at::kLong);
  const auto code = [&](const at::Tensor& i, const at::Tensor& m) {
    return (*model)->Score(i, m).status().code();
  };
  EXPECT_EQ(code(ids.to(at::kFloat), mask), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ids, mask.narrow(1, 0, 4)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ids * 1000, mask), absl::StatusCode::kInvalidArgument);  // id >= vocab
  EXPECT_EQ(code(ids, mask * 2), absl::StatusCode::kInvalidArgument);     // not 0/1
  const at::Tensor left_padded =
      at::cat({at::zeros({2, 1}, at::kLong), at::ones({2, 4}, at::kLong)}, 1);
  EXPECT_EQ(code(ids, left_padded), absl::StatusCode::kInvalidArgument);
  auto empty = (*model)->Score(at::zeros({0, 5}, at::kLong), at::zeros({0, 5}, at::kLong));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->numel(), 0);
}

}  // namespace
}  // namespace bpo::model
