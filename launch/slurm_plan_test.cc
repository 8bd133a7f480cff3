// PlanSlurmJob: where each process of a run goes in a Slurm allocation, and
// the configs and options it refuses (each error names its key or flag).
#include "launch/slurm_plan.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "launch/config_testing.h"

namespace bpo::launch {
namespace {

using ::testing::HasSubstr;
using Kind = SlurmStep::Kind;

// A config of the top-level sections below, `extra`'s replacing them.
bpo::v1::RunConfig Config(const std::string& extra) {
  return testing::ConfigFromSections({{"run_id", "t"},
                                      {"output_dir", "/runs"},
                                      {"schedule", "{total_steps: 8, phases: 4, batch_size: 8}"},
                                      {"model", "{policy: /models/p, reward_model: /models/rm}"},
                                      {"data", "{prompts: /p.jsonl, format: jsonl}"}},
                                     extra, "test.yaml", "/");
}

// "name@component/node+nodes" of every step, for compact expectations.
std::vector<std::string> Where(const SlurmPlan& plan) {
  std::vector<std::string> out;
  for (const SlurmStep& s : plan.steps) {
    out.push_back(absl::StrCat(s.name, "@", s.component, "/", s.node, "+", s.nodes,
                               s.tasks > 1 ? absl::StrCat("x", s.tasks) : "", s.gpu ? ":gpu" : ""));
  }
  return out;
}

TEST(SlurmPlanTest, CpuRunPutsTheLearnerRanksOnOneNodeAndTheWorkersRoundTheNodes) {
  const auto config = Config(
      "learner: {world_size: 2}\nlaunch: {actors: 2, annotators: 1}\nannotation: {kind: rule}\n");
  absl::StatusOr<SlurmPlan> plan = PlanSlurmJob(config, {.nodes = 2});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Where(*plan),
              ::testing::ElementsAre("coordinator@0/0+1", "learner@0/1+1x2", "actor-0@0/0+1",
                                     "actor-1@0/1+1", "annotator-0@0/0+1"));
  ASSERT_EQ(plan->components.size(), 1u);
  EXPECT_EQ(plan->components[0].nodes, 2);
  EXPECT_EQ(plan->components[0].tasks_per_node, 3);  // learners + actor-1 on node 1
  EXPECT_EQ(plan->components[0].gpus_per_node, 0);
  EXPECT_EQ(plan->cpus_per_task, 1);

  absl::StatusOr<SlurmPlan> one = PlanSlurmJob(config, {});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->components[0].nodes, 1);
  EXPECT_EQ(one->components[0].tasks_per_node, 6);
}

TEST(SlurmPlanTest, GpuRunGivesEachLearnerRankAndModelWorkerAGpuOfItsOwn) {
  // 8 ranks fill node 0; 6 actors and 2 reward-model annotators fill node 1;
  // the coordinator shares node 0 without a GPU.
  const auto config = Config(
      "model: {device: cuda, policy: /p, reward_model: /rm}\nlearner: {world_size: 8}\nlaunch: "
      "{actors: 6, annotators: 2}\n");
  absl::StatusOr<SlurmPlan> plan = PlanSlurmJob(config, {.gpus_per_node = 8});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Where(*plan),
              ::testing::ElementsAre("coordinator@0/0+1", "learner@0/0+1x8:gpu",
                                     "actor-0@0/1+1:gpu", "actor-1@0/1+1:gpu", "actor-2@0/1+1:gpu",
                                     "actor-3@0/1+1:gpu", "actor-4@0/1+1:gpu", "actor-5@0/1+1:gpu",
                                     "annotator-0@0/1+1:gpu", "annotator-1@0/1+1:gpu"));
  EXPECT_EQ(plan->components[0].nodes, 2);
  EXPECT_EQ(plan->components[0].gpus_per_node, 8);
  EXPECT_EQ(plan->components[0].tasks_per_node, 9);
  EXPECT_EQ(plan->idle_gpus, 0);
  EXPECT_EQ(plan->cpus_per_task, 4);
}

TEST(SlurmPlanTest, GpuWorkersTakeTheGpusTheLearnerRanksLeave) {
  const auto config = Config(
      "model: {device: cuda, policy: /p, reward_model: /rm}\nlearner: {world_size: 6}\n"
      "schedule: {total_steps: 8, phases: 4, batch_size: 12}\nlaunch: "
      "{actors: 3, annotators: 1}\n"
      "annotation: {kind: rule}\n");
  absl::StatusOr<SlurmPlan> plan = PlanSlurmJob(config, {.gpus_per_node = 4});
  ASSERT_TRUE(plan.ok()) << plan.status();
  // Ranks 0-2 on node 0, 3-5 on node 1; the actors on the free GPU of each,
  // then node 2; the rule annotator on node 0 without a GPU.
  EXPECT_THAT(Where(*plan), ::testing::ElementsAre("coordinator@0/0+1", "learner@0/0+2x6:gpu",
                                                   "actor-0@0/0+1:gpu", "actor-1@0/1+1:gpu",
                                                   "actor-2@0/2+1:gpu", "annotator-0@0/0+1"));
  EXPECT_EQ(plan->steps[1].tasks_per_node, 3);
  EXPECT_EQ(plan->components[0].nodes, 3);
  EXPECT_EQ(plan->idle_gpus, 3);
  EXPECT_THAT(DescribeSlurmPlan(*plan), HasSubstr("3 GPU(s) idle: raise launch.actors"));
}

TEST(SlurmPlanTest, HetjobPutsTheCoordinatorAndCpuWorkersApartFromTheGpuNodes) {
  const auto config = Config(
      "model: {device: cuda, policy: /p, reward_model: /rm}\nlearner: {world_size: 4}\nlaunch: "
      "{actors: 4, annotators: 2}\n"
      "annotation: {kind: rule}\n");
  absl::StatusOr<SlurmPlan> plan = PlanSlurmJob(
      config, {.hetjob = true, .gpus_per_node = 4, .partition = "gpu", .cpu_partition = "cpu"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Where(*plan), ::testing::ElementsAre("coordinator@0/0+1", "learner@1/0+1x4:gpu",
                                                   "actor-0@1/1+1:gpu", "actor-1@1/1+1:gpu",
                                                   "actor-2@1/1+1:gpu", "actor-3@1/1+1:gpu",
                                                   "annotator-0@0/0+1", "annotator-1@0/0+1"));
  ASSERT_EQ(plan->components.size(), 2u);
  EXPECT_EQ(plan->components[0].partition, "cpu");
  EXPECT_EQ(plan->components[0].gpus_per_node, 0);
  EXPECT_EQ(plan->components[0].tasks_per_node, 3);
  EXPECT_EQ(plan->components[1].partition, "gpu");
  EXPECT_EQ(plan->components[1].nodes, 2);
  EXPECT_EQ(plan->components[1].gpus_per_node, 4);
}

TEST(SlurmPlanTest, HetjobOnCpusKeepsTheLearnerRanksInTheirOwnComponent) {
  const auto config = Config("learner: {world_size: 2}\nannotation: {kind: rule}\n");
  absl::StatusOr<SlurmPlan> plan = PlanSlurmJob(config, {.hetjob = true});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Where(*plan),
              ::testing::ElementsAre("coordinator@0/0+1", "learner@1/0+1x2", "actor-0@0/0+1",
                                     "actor-1@0/0+1", "annotator-0@0/0+1"));
}

TEST(SlurmPlanTest, HumanAnnotationRunsTheRatingServiceInsteadOfAnnotators) {
  const auto config = Config("annotation: {kind: human}\nlaunch: {annotators: 3}\n");
  absl::StatusOr<SlurmPlan> plan = PlanSlurmJob(config, {.human_raters = "/r.txt"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Where(*plan),
              ::testing::ElementsAre("coordinator@0/0+1", "learner@0/0+1", "actor-0@0/0+1",
                                     "actor-1@0/0+1", "human@0/0+1"));
  EXPECT_EQ(plan->steps.back().kind, Kind::kHuman);
}

void ExpectRefused(const bpo::v1::RunConfig& config, const SlurmOptions& options,
                   const std::string& key) {
  absl::StatusOr<SlurmPlan> plan = PlanSlurmJob(config, options);
  ASSERT_FALSE(plan.ok()) << "expected an error naming " << key;
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(plan.status().message()), ::testing::StartsWith(key + ":"))
      << plan.status();
}

TEST(SlurmPlanTest, ConfigsAndOptionsItCannotRunAreRefusedNamingTheKey) {
  const auto cuda =
      Config("model: {device: cuda, policy: /p, reward_model: /rm}\nlearner: {world_size: 8}\n");
  ExpectRefused(cuda, {}, "--gpus_per_node");
  ExpectRefused(Config("model: {device: \"cuda:1\", policy: /p}\n"), {.gpus_per_node = 8},
                "model.device");
  ExpectRefused(Config(""), {.gpus_per_node = 8}, "--gpus_per_node");
  // 8 ranks + 2 actors + 1 annotator need 11 GPUs: 2 nodes of 8, no more, no less.
  ExpectRefused(cuda, {.gpus_per_node = 8, .nodes = 1}, "--nodes");
  ExpectRefused(cuda, {.gpus_per_node = 8, .nodes = 3}, "launch.actors");
  EXPECT_TRUE(PlanSlurmJob(cuda, {.gpus_per_node = 8, .nodes = 2}).ok());
  ExpectRefused(Config("annotation: {kind: human}\n"), {}, "annotation.kind");
  ExpectRefused(Config(""), {.human_raters = "/r.txt"}, "--human_raters");
  ExpectRefused(Config("security: {plaintext: true}\nendpoints: {coordinator: 127.0.0.1:1, "
                       "snapshots: 127.0.0.1:2, metrics: 127.0.0.1:3}\n"),
                {.nodes = 2}, "security.plaintext");
  ExpectRefused(Config(""), {.hetjob = true, .nodes = 2}, "--nodes");
  for (const char* bad : {"1:2:3:4", "soon", "1-", ":30", "10::00"}) {
    ExpectRefused(Config(""), {.time = bad}, "--time");
  }
  for (const char* good : {"90", "30:00", "12:00:00", "2-00:00:00", "1-12"}) {
    EXPECT_TRUE(PlanSlurmJob(Config(""), {.time = good}).ok()) << good;
  }
}

}  // namespace
}  // namespace bpo::launch
