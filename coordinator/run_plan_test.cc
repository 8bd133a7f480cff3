#include "coordinator/run_plan.h"

#include "common/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::coordinator {
namespace {

bpo::v1::RunConfig Schedule(int t, int f, int b, int m = 0) {
  bpo::v1::RunConfig c;
  c.mutable_schedule()->set_total_steps(t);
  c.mutable_schedule()->set_phases(f);
  c.mutable_schedule()->set_batch_size(b);
  c.mutable_schedule()->set_pairs_per_phase(m);
  return c;
}

TEST(RunPlanTest, OfflineOnPolicyAndInBetween) {
  // F = 1: offline DAP, one phase of T*B pairs sampled from the SFT policy.
  auto offline = MakeRunPlan(Schedule(600, 1, 16));
  ASSERT_TRUE(offline.ok());
  EXPECT_EQ(offline->steps_per_phase, 600);
  EXPECT_EQ(offline->pairs_per_phase, 9600);
  EXPECT_EQ(offline->total_pairs, 9600);
  EXPECT_TRUE(offline->IsPublishStep(0));
  EXPECT_FALSE(offline->IsPublishStep(1));

  // F = T: on-policy, a new snapshot and B new pairs at every step.
  auto on_policy = MakeRunPlan(Schedule(600, 600, 16));
  ASSERT_TRUE(on_policy.ok());
  EXPECT_EQ(on_policy->steps_per_phase, 1);
  EXPECT_EQ(on_policy->pairs_per_phase, 16);
  EXPECT_TRUE(on_policy->IsPublishStep(599));
  EXPECT_EQ(on_policy->PhaseOfStep(599), 599);

  // F = 2 with the same total pairs: snapshot 1 is published at step 300.
  auto two = MakeRunPlan(Schedule(600, 2, 16));
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->total_pairs, 9600);
  EXPECT_EQ(two->PhaseOfStep(299), 0);
  EXPECT_EQ(two->PhaseOfStep(300), 1);
  const Phase p1 = two->GetPhase(1);
  EXPECT_EQ(p1.first_step, 300);
  EXPECT_EQ(p1.end_step, 600);
  EXPECT_EQ(p1.snapshot_version, 1u);
  EXPECT_EQ(p1.pairs, 4800);
}

TEST(RunPlanTest, SurplusPairsAreCountedButNotUsed) {
  auto plan = MakeRunPlan(Schedule(10, 2, 4, 25));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->total_pairs, 50);
  EXPECT_EQ(plan->pairs_used, 40);
}

TEST(RunPlanTest, RejectsInconsistentSchedules) {
  EXPECT_EQ(MakeRunPlan(Schedule(100, 3, 16)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeRunPlan(Schedule(10, 2, 4, 19)).status().message(),
            "schedule: M = 19 is less than K*B = 20");
}

TEST(RunPlanTest, FormatShowsFirstAndLastPhases) {
  auto plan = MakeRunPlan(DefaultRunConfig().config);
  ASSERT_TRUE(plan.ok());
  const std::string text = FormatRunPlan(*plan, 4);
  EXPECT_THAT(text, ::testing::HasSubstr("T = 625 steps, F = 625 phases, K = 1 steps/phase"));
  EXPECT_THAT(text, ::testing::HasSubstr("    0  [    0,     1)  v0"));
  EXPECT_THAT(text, ::testing::HasSubstr("  ... 621 more phases ...\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("  624  [  624,   625)  v624"));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("  2  [")));
}

}  // namespace
}  // namespace bpo::coordinator
