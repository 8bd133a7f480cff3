#include "learner/reward_training.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "learner/sft.h"

namespace bpo::learner {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const std::string dir = (fs::temp_directory_path() / absl::StrCat(name, "_", getpid())).string();
  fs::remove_all(dir);
  return dir;
}

// A preference only a model that reads the response can learn: the chosen
// summary names the post's subject, the rejected one another subject.
std::vector<PreferencePair> Pairs(int n, int offset) {
  const char* subjects[] = {"roommate", "sister", "boss", "neighbour", "friend", "cousin"};
  std::vector<PreferencePair> out;
  for (int i = offset; i < offset + n; ++i) {
    // (i + 1 + k) % 6 with k in 0..4 is never i % 6.
    const std::string who = subjects[i % 6], other = subjects[(i + 1 + (i / 6) % 5) % 6];
    const std::string prompt =
        absl::StrCat("POST: My ", who, " took my car ", i % 5, " days ago. What now?\nTL;DR:");
    out.push_back({prompt, absl::StrCat(" my ", who, " took my car"),
                   absl::StrCat(" my ", other, " took my car")});
  }
  return out;
}

TEST(RewardTrainingTest, FromScratchLearnsAHeldOutPreferenceAndReloadsIdentically) {
  const std::string dir = TempDir("bpo_rm");
  std::vector<std::string> texts;
  for (const auto& p : Pairs(60, 0)) texts.push_back(p.prompt + p.chosen + p.rejected);
  ASSERT_TRUE(TrainTokenizer(texts, dir, 300, 1, TokenizerLayout::kDeberta).ok());
  ASSERT_TRUE(fs::exists(dir + "/spm.model"));
  auto tok = model::Tokenizer::Load(dir + "/spm.model");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->pad_id(), 0);
  EXPECT_EQ((*tok)->cls_id(), 1);
  EXPECT_EQ((*tok)->sep_id(), 2);
  SmallDebertaOptions o;
  o.vocab_size = (*tok)->vocab_size();
  o.hidden_size = 64;
  o.heads = 2;
  o.intermediate_size = 128;
  o.seed = 3;
  ASSERT_TRUE(WriteSmallDeberta(dir, o).ok());
  auto rm = model::LoadRewardModel(dir, {});
  ASSERT_TRUE(rm.ok()) << rm.status();

  const auto train = Pairs(48, 0), heldout = Pairs(24, 48);
  auto before = EvaluatePairs(*rm, heldout, 128);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_NEAR(before->loss, std::log(2.0), 0.05);  // random init: margins near 0
  RewardTrainOptions t;
  t.steps = 120;
  t.batch_size = 16;
  t.learning_rate = 2e-3;
  t.warmup_steps = 10;
  t.max_length = 128;
  int calls = 0;
  auto log = TrainRewardModel(*rm, train, t, [&](const RewardStep& s) {
    ++calls;
    EXPECT_EQ(s.step, calls);
    EXPECT_GE(s.accuracy, 0);
    EXPECT_LE(s.accuracy, 1);
  });
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(calls, 120);
  auto after = EvaluatePairs(*rm, heldout, 128);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GE(after->accuracy, 0.9) << "held-out accuracy " << after->accuracy;
  EXPECT_LT(after->loss, 0.5 * before->loss);
  // Training left no gradients or grad requirements behind.
  for (const auto& [name, w] : rm->model->NamedParameters()) {
    EXPECT_FALSE(w.requires_grad()) << name;
  }

  const std::string out = TempDir("bpo_rm_saved");
  ASSERT_TRUE(SaveRewardModel(*rm->model, dir, out).ok());
  EXPECT_TRUE(fs::exists(out + "/spm.model"));
  EXPECT_TRUE(fs::exists(out + "/tokenizer_config.json"));
  auto reloaded = model::LoadRewardModel(out, {});
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  auto again = EvaluatePairs(*reloaded, heldout, 128);
  ASSERT_TRUE(again.ok());
  EXPECT_DOUBLE_EQ(again->loss, after->loss);
  fs::remove_all(dir);
  fs::remove_all(out);
}

TEST(RewardTrainingTest, BadInputIsAClearError) {
  const std::string dir = TempDir("bpo_rm_bad");
  fs::create_directories(dir);
  {
    std::ofstream(dir + "/pairs.jsonl")
        << "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
        << "{\"prompt\": \"p\", \"chosen\": \"a\"}\n";
  }
  auto pairs = ReadPreferencePairs(dir + "/pairs.jsonl");
  ASSERT_FALSE(pairs.ok());
  EXPECT_NE(pairs.status().message().find("pairs.jsonl:2"), std::string::npos) << pairs.status();
  EXPECT_NE(pairs.status().message().find("rejected"), std::string::npos) << pairs.status();
  std::ofstream(dir + "/empty.jsonl") << "\n";
  EXPECT_EQ(ReadPreferencePairs(dir + "/empty.jsonl").status().code(),
            absl::StatusCode::kInvalidArgument);
  model::RewardModel none;
  EXPECT_EQ(TrainRewardModel(none, Pairs(2, 0), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A causal LM directory is not a reward model.
  auto wrong = model::LoadRewardModel(absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/llama"), {});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("architecture"), std::string::npos) << wrong.status();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bpo::learner
