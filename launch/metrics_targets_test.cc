// Prometheus file discovery: the labels of each process and the targets file
// kept equal to the address files.
#include "launch/metrics_targets.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/address_file.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace bpo::launch {
namespace {

TEST(MetricsTargetsTest, LabelsNameTheRunProcessRoleAndLearnerRank) {
  EXPECT_EQ(
      ScrapeLabels("r", "learner-3"),
      (Labels{{"run_id", "r"}, {"process", "learner-3"}, {"role", "learner"}, {"rank", "3"}}));
  EXPECT_EQ(ScrapeLabels("r", "coordinator").at("role"), "coordinator");
  EXPECT_EQ(ScrapeLabels("r", "actor-12").at("role"), "actor");
  EXPECT_EQ(ScrapeLabels("r", "annotator-0").at("role"), "annotator");
  EXPECT_EQ(ScrapeLabels("r", "human").at("role"), "annotator");
  EXPECT_EQ(ScrapeLabels("r", "actor-0").count("rank"), 0u);
  EXPECT_EQ(ScrapeLabels("r", "actor-0", {{"slurm_job_id", "7"}}).at("slurm_job_id"), "7");
}

TEST(MetricsTargetsTest, FileFollowsTheAddressFilesAsProcessesAppearAndMove) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/targets-", getpid());
  std::filesystem::remove_all(dir);
  const std::string path = dir + "/prometheus-targets.json";
  MetricsTargets targets({.processes = {"coordinator", "learner-0", "actor-0"},
                          .addresses_dir = dir + "/addresses",
                          .path = path,
                          .run_id = "r",
                          .extra_labels = {{"slurm_job_id", "9"}}});
  std::vector<ScrapeTarget> changed;
  ASSERT_TRUE(targets.Refresh(&changed).ok());
  EXPECT_TRUE(changed.empty());
  EXPECT_FALSE(std::filesystem::exists(path));  // nothing published yet

  ASSERT_TRUE(WriteAddressFile(dir + "/addresses/actor-0.json", {{"metrics", "n2:9100"}}).ok());
  ASSERT_TRUE(WriteAddressFile(dir + "/addresses/coordinator.json",
                               {{"grpc", "n1:5000"}, {"metrics", "n1:9000"}})
                  .ok());
  ASSERT_TRUE(targets.Refresh(&changed).ok());
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[0].process, "coordinator");
  EXPECT_EQ(changed[0].address, "n1:9000");
  nlohmann::json file = nlohmann::json::parse(*ReadWholeFile(path));
  ASSERT_EQ(file.size(), 2u);  // in the processes' order
  EXPECT_EQ(file[0]["targets"][0], "n1:9000");
  EXPECT_EQ(file[0]["labels"]["role"], "coordinator");
  EXPECT_EQ(file[1]["targets"][0], "n2:9100");
  EXPECT_EQ(file[1]["labels"]["process"], "actor-0");
  EXPECT_EQ(file[1]["labels"]["slurm_job_id"], "9");

  changed.clear();
  ASSERT_TRUE(targets.Refresh(&changed).ok());
  EXPECT_TRUE(changed.empty());
  // A restarted actor has a new port.
  ASSERT_TRUE(WriteAddressFile(dir + "/addresses/actor-0.json", {{"metrics", "n3:9200"}}).ok());
  ASSERT_TRUE(targets.Refresh(&changed).ok());
  ASSERT_EQ(changed.size(), 1u);
  file = nlohmann::json::parse(*ReadWholeFile(path));
  EXPECT_EQ(file[1]["targets"][0], "n3:9200");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace bpo::launch
