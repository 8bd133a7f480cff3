#include "experiments/plan.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::experiments {
namespace {

using ::testing::HasSubstr;

const Experiment& Find(const std::vector<Experiment>& plan, const std::string& id) {
  for (const Experiment& e : plan) {
    if (e.id == id) return e;
  }
  ADD_FAILURE() << "no run " << id;
  static const Experiment kNone;
  return kNone;
}

TEST(PlanTest, TheQuickPresetPlans88RunsGoldFirstSeedsOutermost) {
  const std::vector<Experiment> plan = Plan(QuickPreset(), "/r");
  ASSERT_EQ(plan.size(), 88u);
  EXPECT_EQ(plan[0].id, "gold-tldr");
  EXPECT_EQ(plan[1].id, "t1-tldr-dpo-offline-s1");
  EXPECT_EQ(plan[18].id, "t1-dialogue-slic-bpo-s1");
  EXPECT_EQ(plan[19].id, "t1-tldr-dpo-offline-s2");
  std::map<Group, int> per_group;
  for (const Experiment& e : plan) ++per_group[e.group];
  EXPECT_EQ(per_group[Group::kTable1], 54);  // 3 seeds x 2 tasks x 3 losses x 3 methods
  EXPECT_EQ(per_group[Group::kFig4], 12);    // F = 2, 4, 8, 16
  EXPECT_EQ(per_group[Group::kFig5], 4);     // the gold policy and 3 seeds
  EXPECT_EQ(per_group[Group::kFig6], 12);    // {BPO, on-policy} x {1, 5} members
  EXPECT_EQ(per_group[Group::kFig7], 3);
  EXPECT_EQ(per_group[Group::kMerge], 3);
  EXPECT_EQ(Plan(FullPreset(), "/r").size(), 1u + 90 + 6 * 5 + 5 + 10 + 5 + 5);
}

// The labels are what configs, `bpo eval --method` and the report show.
TEST(PlanTest, LabelsAreTheReportsRowNames) {
  const std::vector<Experiment> plan = Plan(QuickPreset(), "/r");
  const std::map<std::string, std::string> labels = {
      {"gold-tldr", "gold (BPO, 2T steps)"},
      {"t1-tldr-dpo-offline-s1", "Offline DPO"},
      {"t1-dialogue-ipo-onpolicy-s2", "On-policy IPO"},
      {"t1-tldr-slic-bpo-s3", "On-policy BPO (SLiC)"},
      {"f4-tldr-F16-s1", "BPO (DPO), F = 16"},
      {"f5-tldr-gold-s2", "On-policy DPO, gold reference"},
      {"f6-tldr-bpo-m1-s1", "BPO (DPO), one LoRA"},
      {"f6-tldr-onpolicy-m5-s3", "On-policy DPO, ensemble of 5"},
      {"f7-tldr-ema-m1-s1", "On-policy DPO, one LoRA, EMA reference"},
      {"mg-tldr-peft-s2", "BPO (DPO), peft_linear merge"}};
  for (const auto& [id, label] : labels) EXPECT_EQ(Label(Find(plan, id)), label) << id;
  const Experiment& gold = Find(plan, "gold-tldr");
  EXPECT_EQ(gold.phases, 64);
  EXPECT_EQ(gold.steps, 64);
  EXPECT_EQ(gold.seed, 100);
  const Experiment& offline = Find(plan, "t1-tldr-dpo-offline-s1");
  EXPECT_EQ(offline.phases, 1);
  EXPECT_EQ(offline.reference, Reference::kSft);
  EXPECT_EQ(Find(plan, "t1-tldr-dpo-bpo-s1").reference, Reference::kBehavior);
  EXPECT_EQ(Find(plan, "f5-tldr-gold-s1").static_adapter, "/r/runs/gold-tldr/adapter");
}

TEST(PlanTest, ConfigsSpellTheRunsSettings) {
  const Preset p = QuickPreset();
  const std::vector<Experiment> plan = Plan(p, "/r");
  const std::string ema = RunConfigYaml(p, Find(plan, "f7-tldr-ema-m1-s2"), "/r");
  EXPECT_THAT(ema, HasSubstr("# Written by bpo reproduce (quick preset): On-policy DPO, one LoRA, "
                             "EMA reference, seed 2\nrun_id: f7-tldr-ema-m1-s2\n"));
  EXPECT_THAT(ema, HasSubstr("schedule: {total_steps: 32, phases: 32, batch_size: 8}\n"));
  EXPECT_THAT(ema, HasSubstr("reference: {mode: ema, logprob_source: learner, ema_rate: 0.1}\n"));
  EXPECT_THAT(ema, HasSubstr("lora: {members: 1, rank: 8, alpha: 16, dropout: 0.0, "
                             "target_modules: [all-linear], merge_mode: mean_delta}\n"));
  EXPECT_THAT(ema, HasSubstr("optimizer: {learning_rate: 0.002}\n"));
  EXPECT_THAT(ema, HasSubstr("model: {policy: /r/setup/tldr/sft, reward_model: /r/setup/tldr/rm}"));
  const std::string gold = RunConfigYaml(p, Find(plan, "f5-tldr-gold-s1"), "/r");
  EXPECT_THAT(gold, HasSubstr("reference: {mode: static, logprob_source: learner, static_adapter: "
                              "/r/runs/gold-tldr/adapter}\n"));
  const std::string ipo = RunConfigYaml(p, Find(plan, "t1-dialogue-ipo-offline-s1"), "/r");
  EXPECT_THAT(ipo, HasSubstr("loss: {type: ipo, beta: 0.1}\n"));
  EXPECT_THAT(ipo, HasSubstr("phases: 1,"));
  EXPECT_THAT(RunConfigYaml(p, Find(plan, "mg-tldr-peft-s1"), "/r"),
              HasSubstr("merge_mode: peft_linear}"));
}

TEST(PlanTest, OnlyKeepsTheNamedGroups) {
  const auto groups = ParseGroups("fig7,merge");
  ASSERT_TRUE(groups.ok());
  const std::vector<Experiment> plan = FilterGroups(Plan(QuickPreset(), "/r"), *groups);
  ASSERT_EQ(plan.size(), 6u);
  for (const Experiment& e : plan) EXPECT_TRUE(e.group == Group::kFig7 || e.group == Group::kMerge);
  const auto bad = ParseGroups("table1,table9");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(),
              HasSubstr("unknown group 'table9' (table1, fig4, fig5, fig6, fig7, merge)"));
}

TEST(PlanTest, CurveRunsAreTheOnPolicyTldrDpoRuns) {
  std::vector<std::string> ids;
  for (const Experiment& e : Plan(QuickPreset(), "/r")) {
    if (IsCurveRun(e) && e.seed == 1) ids.push_back(e.id);
  }
  EXPECT_THAT(ids, ::testing::ElementsAre("t1-tldr-dpo-onpolicy-s1", "t1-tldr-dpo-bpo-s1"));
  EXPECT_THAT(CurveSteps(QuickPreset()), ::testing::ElementsAre(8, 16, 24));
  EXPECT_EQ(CurveId(Plan(QuickPreset(), "/r")[2], 8), "curve-t1-tldr-dpo-onpolicy-s1-step8");
}

}  // namespace
}  // namespace bpo::experiments
