#include "tasks/synthetic.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

namespace bpo::tasks {
namespace {

using ::testing::HasSubstr;

double Oracle(const Task& t, const std::string& p, const std::string& r) {
  auto s = t.Oracle(p, r);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : -99;
}

TEST(SyntheticTest, DataIsDeterministicAndPromptSetsAreDisjoint) {
  for (const auto& name : TaskNames()) {
    auto task = MakeTask(name);
    ASSERT_TRUE(task.ok());
    const TaskSizes sizes{300, 300, 100};
    const TaskData a = (*task)->Generate(7, sizes), b = (*task)->Generate(7, sizes);
    const TaskData c = (*task)->Generate(8, sizes);
    ASSERT_EQ(a.sft.size(), 300u);
    ASSERT_EQ(a.alignment.size(), 300u);
    ASSERT_EQ(a.test.size(), 100u);
    EXPECT_EQ(a.test[5].text(), b.test[5].text()) << name;
    EXPECT_EQ(a.sft[9].response, b.sft[9].response) << name;
    EXPECT_NE(a.test[5].text(), c.test[5].text()) << name;
    std::set<std::string> seen, sft;
    for (const auto& s : a.sft) sft.insert(s.prompt);
    seen = sft;
    for (const auto& p : a.alignment) EXPECT_TRUE(seen.insert(p.text()).second) << name;
    for (const auto& p : a.test) {
      EXPECT_TRUE(seen.insert(p.text()).second) << name;
      EXPECT_FALSE(p.reference().empty());
      EXPECT_EQ(p.reference()[0], ' ');
    }
  }
}

TEST(SyntheticTest, TldrOracleRewardsCoverageFaithfulnessAndBrevity) {
  auto task = MakeTask("tldr");
  const std::string p =
      "SUBREDDIT: r/jobs\nTITLE: My boss quit smoking, what now?\nPOST: I am 30 and my boss quit "
      "smoking. I rarely post here. I am worried about it. It has been a long week. Should I "
      "ask for a raise?\nTL;DR:";
  const double full = Oracle(**task, p, " My boss quit smoking, should I ask for a raise?");
  const double partial = Oracle(**task, p, " My boss quit smoking.");
  const double unfaithful = Oracle(**task, p, " My boss is acting weird, need advice.");
  const double verbose = Oracle(**task, p,
                                " I rarely post here. I am worried about it. It has been a long "
                                "week. My boss quit smoking and I rarely post here.");
  EXPECT_DOUBLE_EQ(full, 1.0);
  EXPECT_GT(full, partial);
  EXPECT_GT(partial, unfaithful);
  EXPECT_GT(partial, verbose);
  EXPECT_DOUBLE_EQ(Oracle(**task, p, ""), -1.0);
  EXPECT_THAT((*task)->Oracle("Human: hi", " x").status().message(),
              HasSubstr("not a prompt of the tldr task"));
}

TEST(SyntheticTest, DialogueOracleRewardsTheRightWellFormedAnswer) {
  auto task = MakeTask("dialogue");
  const std::string p = "Human: What is 7 plus 6? Assistant:";
  const double best = Oracle(**task, p, " The answer is 13.");
  EXPECT_DOUBLE_EQ(best, 1.5);
  EXPECT_GT(best, Oracle(**task, p, " 13"));
  EXPECT_GT(Oracle(**task, p, " 13"), Oracle(**task, p, " The answer is 14."));
  EXPECT_GT(Oracle(**task, p, " 13"),
            Oracle(**task, p, " It could be 12 or 13 or 14, hard to say really."));
  EXPECT_DOUBLE_EQ(Oracle(**task, "Human: What is 5 minus 9? Assistant:", " The answer is -4."),
                   1.5);
  EXPECT_FALSE((*task)->Oracle("SUBREDDIT: r/x", " 1").ok());
}

// SFT-like responses beat the references sometimes but not always: the win
// rate has room both ways.
TEST(SyntheticTest, SftResponsesWinAgainstReferencesNeitherAlwaysNorNever) {
  for (const auto& name : TaskNames()) {
    auto task = MakeTask(name);
    const TaskData d = (*task)->Generate(3, {600, 10, 200});
    // Pair each test prompt with the response style of an SFT demonstration
    // by regenerating: score the SFT demos against their own oracle and the
    // test references against theirs, and compare the distributions.
    std::vector<double> sft, ref;
    for (const auto& s : d.sft) sft.push_back(Oracle(**task, s.prompt, s.response));
    for (const auto& t : d.test) ref.push_back(Oracle(**task, t.text(), t.reference()));
    int wins = 0, total = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      for (size_t j = 0; j < 50; ++j) {
        wins += sft[(i * 50 + j) % sft.size()] > ref[i];
        ++total;
      }
    }
    const double rate = static_cast<double>(wins) / total;
    EXPECT_GT(rate, 0.1) << name;
    EXPECT_LT(rate, 0.9) << name;
  }
}

TEST(SyntheticTest, UnknownTaskNamesTheKnownOnes) {
  auto t = MakeTask("summarise");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("known: tldr, dialogue"));
}

}  // namespace
}  // namespace bpo::tasks
