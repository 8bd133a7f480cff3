// A checkpoint that does not match its config.json is refused with the file
// and the tensor named.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/causal_lm.h"
#include "model/safetensors.h"

namespace bpo::model {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class CausalLmLoadErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / absl::StrCat("bpo_load_", getpid())).string();
    fs::create_directories(dir_);
    fs::copy_file(absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/llama/config.json"),
                  dir_ + "/config.json", fs::copy_options::overwrite_existing);
    auto file = SafetensorsFile::Open(
        absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/llama/model.safetensors"));
    ASSERT_TRUE(file.ok());
    for (const TensorInfo& t : (*file)->header().tensors) {
      tensors_.emplace_back(t.name, (*(*file)->Tensor(t.name)).clone());
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  absl::Status LoadWith(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    EXPECT_TRUE(WriteSafetensors(dir_ + "/model.safetensors", tensors).ok());
    return CausalLm::Load(dir_).status();
  }

  std::string dir_;
  std::vector<std::pair<std::string, at::Tensor>> tensors_;
};

TEST_F(CausalLmLoadErrorTest, MissingTensor) {
  auto t = tensors_;
  t.erase(
      std::remove_if(t.begin(), t.end(),
                     [](const auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; }),
      t.end());
  EXPECT_EQ(LoadWith(t),
            absl::NotFoundError(dir_ + ": missing tensor 'model.layers.1.mlp.up_proj.weight'"));
}

TEST_F(CausalLmLoadErrorTest, MisshapenTensor) {
  auto t = tensors_;
  for (auto& [name, tensor] : t) {
    if (name == "model.layers.0.self_attn.k_proj.weight") tensor = at::zeros({16, 64});
  }
  EXPECT_EQ(LoadWith(t),
            absl::InvalidArgumentError(
                dir_ + "/model.safetensors: tensor 'model.layers.0.self_attn.k_proj.weight' "
                       "has shape [16, 64] but config.json implies [32, 64]"));
}

TEST_F(CausalLmLoadErrorTest, UnexpectedTensor) {
  auto t = tensors_;
  t.emplace_back("model.layers.9.mlp.up_proj.weight", at::zeros({2}));
  EXPECT_EQ(LoadWith(t), absl::InvalidArgumentError(
                             dir_ + "/model.safetensors: unexpected tensor "
                                    "'model.layers.9.mlp.up_proj.weight' for LlamaForCausalLM as "
                                    "config.json describes it"));
}

TEST_F(CausalLmLoadErrorTest, IntegerWeights) {
  auto t = tensors_;
  for (auto& [name, tensor] : t) {
    if (name == "model.norm.weight") tensor = at::ones({64}, at::kLong);
  }
  EXPECT_THAT(std::string(LoadWith(t).message()),
              HasSubstr("tensor 'model.norm.weight' has non-float dtype Long"));
}

TEST_F(CausalLmLoadErrorTest, ShardedCheckpointsLoad) {
  // Two shards and an index, as save_pretrained writes for large models.
  std::vector<std::pair<std::string, at::Tensor>> a(tensors_.begin(), tensors_.begin() + 10);
  std::vector<std::pair<std::string, at::Tensor>> b(tensors_.begin() + 10, tensors_.end());
  ASSERT_TRUE(WriteSafetensors(dir_ + "/model-00001-of-00002.safetensors", a).ok());
  ASSERT_TRUE(WriteSafetensors(dir_ + "/model-00002-of-00002.safetensors", b).ok());
  std::string map;
  for (const auto& [name, t] : a)
    map += absl::StrCat(map.empty() ? "" : ",", "\"", name,
                        "\": \"model-00001-of-00002.safetensors\"");
  for (const auto& [name, t] : b)
    map += absl::StrCat(",\"", name, "\": \"model-00002-of-00002.safetensors\"");
  std::ofstream(dir_ + "/model.safetensors.index.json") << "{\"weight_map\": {" << map << "}}";
  auto m = CausalLm::Load(dir_);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->NumParameters(), 162240);
  std::ofstream(dir_ + "/model.safetensors.index.json") << "{\"weight_map\": {\"x\": \"../etc\"}}";
  EXPECT_THAT(std::string(CausalLm::Load(dir_).status().message()),
              HasSubstr("weight_map: tensor 'x' names a bad shard \"../etc\""));
}

}  // namespace
}  // namespace bpo::model
