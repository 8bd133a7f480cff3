#include "learner/sft.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "model/policy.h"

namespace bpo::learner {
namespace {

namespace fs = std::filesystem;

std::string Fixture(const std::string& name) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", name);
}

std::vector<std::pair<std::string, std::string>> Demos() {
  std::vector<std::pair<std::string, std::string>> d;
  for (int i = 0; i < 40; ++i) {
    d.emplace_back(absl::StrCat("Human: What is ", i % 7, " plus 1? Assistant:"),
                   absl::StrCat(" The answer is ", i % 7 + 1, "."));
  }
  return d;
}

TEST(SftTest, FineTuningLowersTheLossAndTheSavedModelReloadsIdentically) {
  at::manual_seed(0);
  auto policy = model::LoadPolicy(Fixture("llama"), {});
  ASSERT_TRUE(policy.ok()) << policy.status();
  SftOptions o;
  o.steps = 30;
  o.batch_size = 8;
  o.learning_rate = 3e-3;
  o.warmup_steps = 3;
  const auto demos = Demos();
  const double before = SftLoss(*policy->model, *policy->tokenizer, demos, o);
  auto log = TrainSft(policy->model.get(), *policy->tokenizer, demos, o);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 30u);
  const double after = SftLoss(*policy->model, *policy->tokenizer, demos, o);
  EXPECT_LT(after, 0.5 * before) << before << " -> " << after;

  const std::string out = (fs::temp_directory_path() / absl::StrCat("bpo_sft_", getpid())).string();
  fs::remove_all(out);
  ASSERT_TRUE(SaveCausalLm(*policy->model, Fixture("llama"), out).ok());
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  EXPECT_TRUE(fs::exists(out + "/tokenizer.model"));
  auto reloaded = model::LoadPolicy(out, {});
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_DOUBLE_EQ(SftLoss(*reloaded->model, *reloaded->tokenizer, demos, o), after);
  EXPECT_EQ(TrainSft(policy->model.get(), *policy->tokenizer, {}, o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SftTest, LoraFineTuningLowersTheLossAndMergesIntoTheLinearWeightsOnly) {
  at::manual_seed(0);
  auto policy = model::LoadPolicy(Fixture("llama"), {});
  ASSERT_TRUE(policy.ok()) << policy.status();
  std::map<std::string, at::Tensor> before;
  for (const auto& [name, t] : policy->model->NamedParameters()) before[name] = t.clone();
  SftOptions o;
  o.steps = 40;
  o.batch_size = 8;
  o.learning_rate = 1e-2;
  o.warmup_steps = 3;
  o.lora_rank = 4;
  const auto demos = Demos();
  const double loss0 = SftLoss(*policy->model, *policy->tokenizer, demos, o);
  auto log = TrainSft(policy->model.get(), *policy->tokenizer, demos, o);
  ASSERT_TRUE(log.ok()) << log.status();
  const double loss1 = SftLoss(*policy->model, *policy->tokenizer, demos, o);
  EXPECT_LT(loss1, 0.7 * loss0) << loss0 << " -> " << loss1;
  int changed = 0, kept = 0;
  for (const auto& [name, t] : policy->model->NamedParameters()) {
    EXPECT_FALSE(t.requires_grad()) << name;
    const bool same = at::equal(t, before[name]);
    const bool linear = name.find("_proj.weight") != std::string::npos;
    if (linear) {
      changed += same ? 0 : 1;
    } else {
      EXPECT_TRUE(same) << name << " is not a LoRA target but changed";
      ++kept;
    }
  }
  EXPECT_GT(changed, 0);
  EXPECT_GT(kept, 0);
}

TEST(SftTest, FromScratchTokenizerAndSmallLlamaLoad) {
  const std::string dir =
      (fs::temp_directory_path() / absl::StrCat("bpo_scratch_", getpid())).string();
  fs::remove_all(dir);
  std::vector<std::string> texts;
  for (const auto& [p, r] : Demos()) texts.push_back(p + r);
  auto s = TrainTokenizer(texts, dir, 300, 1);
  ASSERT_TRUE(s.ok()) << s;
  auto tok = model::Tokenizer::Load(dir + "/tokenizer.model");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->bos_id(), kBosId);
  EXPECT_EQ((*tok)->eos_id(), kEosId);
  EXPECT_EQ((*tok)->Decode((*tok)->Encode("What is 3 plus 1?", false)), "What is 3 plus 1?");
  SmallLlamaOptions lo;
  lo.vocab_size = (*tok)->vocab_size();
  lo.hidden_size = 32;
  lo.heads = 2;
  lo.kv_heads = 1;
  lo.intermediate_size = 64;
  ASSERT_TRUE(WriteSmallLlama(dir, lo).ok());
  auto policy = model::LoadPolicy(dir, {});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->model->config().vocab_size, lo.vocab_size);
  EXPECT_EQ(TrainTokenizer(texts, dir, 10, 1).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bpo::learner
