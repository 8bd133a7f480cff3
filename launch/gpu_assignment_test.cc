// AssignGpus: which GPU each process of `bpo local` takes with model.device cuda.
#include "gtest/gtest.h"
#include "launch/local_run.h"

namespace bpo::launch {
namespace {

TEST(AssignGpusTest, LearnersFirstThenWorkersOnTheFreeGpusInTurn) {
  auto a = AssignGpus(/*learners=*/2, /*actors=*/3, /*annotators=*/2, /*gpus=*/4);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->learners, (std::vector<int>{0, 1}));
  EXPECT_EQ(a->actors, (std::vector<int>{2, 3, 2}));
  EXPECT_EQ(a->annotators, (std::vector<int>{3, 2}));
}

TEST(AssignGpusTest, WorkersShareEveryGpuWhenTheLearnersUseThemAll) {
  auto a = AssignGpus(1, 2, 1, 1);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->learners, (std::vector<int>{0}));
  EXPECT_EQ(a->actors, (std::vector<int>{0, 0}));
  EXPECT_EQ(a->annotators, (std::vector<int>{0}));
  auto b = AssignGpus(2, 3, 0, 2);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->actors, (std::vector<int>{0, 1, 0}));
}

TEST(AssignGpusTest, MoreRanksThanGpusOrNoGpuIsAnError) {
  auto a = AssignGpus(4, 1, 1, 2);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("learner.world_size = 4 but this host has 2 GPU(s)"),
            std::string::npos)
      << a.status();
  EXPECT_FALSE(AssignGpus(1, 1, 1, 0).ok());
}

}  // namespace
}  // namespace bpo::launch
