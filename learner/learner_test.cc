// The learner loop (learner::Learner) end to end on the tiny Gemma fixture:
// online against the in-process coordinator (the actor and annotator played
// through its store), and offline from a preference file, with resume.
#include "learner/learner.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/config.h"
#include "coordinator/testing/in_process_coordinator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::learner {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string TestDir() {
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      absl::StrCat("learner_test_", getpid(), "_",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

int64_t CountLines(const std::string& path) {
  std::ifstream in(path);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// A small strict run (T = 4, F = 2, B = 2, M = 4) on the tiny Gemma.
bpo::v1::RunConfig TinyRunConfig(const std::string& dir) {
  bpo::v1::RunConfig c = coordinator::testing::SmallRunConfig();
  c.set_run_id("learner-test");
  c.set_output_dir(dir);
  c.mutable_model()->set_policy(std::string(BPO_SOURCE_DIR) + "/tests/fixtures/gemma");
  c.mutable_model()->set_tokenizer("");
  c.mutable_reference()->set_logprob_source(bpo::v1::ReferenceConfig::LEARNER);
  c.mutable_lora()->set_members(2);
  c.mutable_lora()->set_rank(2);
  c.mutable_lora()->set_alpha(4);
  c.mutable_learner()->set_world_size(1);
  c.mutable_learner()->set_checkpoint_every(1);
  c.mutable_endpoints()->set_snapshots("127.0.0.1:0");
  c.mutable_endpoints()->set_metrics("127.0.0.1:0");
  return c;
}

TEST(LearnerTest, OnlineRunTrainsEveryBatchAndPublishesEveryPhase) {
  const std::string dir = TestDir();
  const bpo::v1::RunConfig config = TinyRunConfig(dir);
  auto coordinator =
      coordinator::testing::InProcessCoordinator::Start(dir + "/coordinator", config);
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  coordinator::ClientOptions co;
  co.address = (*coordinator)->address();
  co.transport = TransportSecurity::Plaintext();
  auto client = coordinator::CoordinatorClient::Connect(co);
  ASSERT_TRUE(client.ok()) << client.status();
  bpo::v1::WorkerInfo info;
  info.set_kind(bpo::v1::WORKER_KIND_LEARNER);
  info.set_name("learner-0");
  info.set_world_size(1);
  ASSERT_TRUE((*client)->Register(info).ok());

  LearnerOptions options;
  options.transport = TransportSecurity::Plaintext();
  options.config = config;
  std::ostringstream out;
  options.out = &out;
  // A failing actor or annotator stops the learner instead of leaving it
  // waiting for pairs that never come.
  std::atomic<bool> others_failed{false};
  options.stop = [&] { return others_failed.load(); };
  metrics::Registry registry;
  auto learner = Learner::Create(options, client->get(), &registry);
  ASSERT_TRUE(learner.ok()) << learner.status();

  // The learner publishes snapshot p when the coordinator asks; the actor
  // and the annotator (played here) then fill phase p for it.
  absl::Notification done;
  absl::Status others_status;
  std::thread others([&] {
    while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(20))) {
      others_status = (*coordinator)->SampleOpenPrompts();
      if (others_status.ok()) others_status = (*coordinator)->AnnotateAll().status();
      if (!others_status.ok()) {
        others_failed = true;
        return;
      }
    }
  });
  const absl::Status run = (*learner)->Run();
  done.Notify();
  others.join();
  ASSERT_TRUE(others_status.ok()) << others_status;
  ASSERT_TRUE(run.ok()) << run << "\n" << out.str();

  EXPECT_EQ((*learner)->steps_done(), 4);
  auto status = (*coordinator)->store()->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->step(), 4);
  EXPECT_EQ(status->pairs_consumed(), 8);  // F * M, each once
  EXPECT_EQ(status->state(), bpo::v1::RUN_STATE_DONE);
  ASSERT_EQ(status->snapshots_size(), 2);
  for (const auto& s : status->snapshots()) {
    EXPECT_TRUE(fs::exists(
        snapshot::SnapshotStore::PayloadPath(dir + "/learner-test/snapshots", s.version())))
        << s.version();
  }
  EXPECT_EQ(status->last_step_metrics().count("loss"), 1u);
  EXPECT_EQ(CountLines(dir + "/learner-test/steps.jsonl"), 4);
  EXPECT_TRUE(fs::exists(dir + "/learner-test/adapter/adapter_config.json"));
  EXPECT_TRUE(fs::exists(dir + "/learner-test/checkpoints/step-4/DONE"));
  EXPECT_THAT(out.str(), HasSubstr("snapshot v1 at step 2"));
  EXPECT_THAT(out.str(), HasSubstr("step 4/4"));
  EXPECT_THAT(out.str(), HasSubstr("rank 0 time:"));
}

std::string WritePairs(const std::string& dir, int n) {
  const std::string path = dir + "/pairs.jsonl";
  std::ofstream f(path);
  for (int i = 0; i < n; ++i) {
    f << "{\"prompt\": \"question " << i << "\", \"chosen\": \"thank you " << i
      << "\", \"rejected\": \"no " << i << "\"}\n";
  }
  return path;
}

TEST(LearnerTest, OfflineRunTrainsTheFileOnceAndResumesWhereItStopped) {
  const std::string dir = TestDir();
  LearnerOptions options;
  options.transport = TransportSecurity::Plaintext();
  options.config = TinyRunConfig(dir);
  options.pairs_path = WritePairs(dir, 8);  // T * B = 4 * 2
  options.snapshot_every = 2;
  options.max_steps = 3;
  std::ostringstream first;
  options.out = &first;
  {
    metrics::Registry registry;
    auto learner = Learner::Create(options, nullptr, &registry);
    ASSERT_TRUE(learner.ok()) << learner.status();
    ASSERT_TRUE((*learner)->Run().ok());
    EXPECT_EQ((*learner)->steps_done(), 3);
    EXPECT_FALSE(fs::exists(dir + "/learner-test/adapter"));
  }
  EXPECT_THAT(first.str(), HasSubstr("snapshot v0 at step 0"));
  EXPECT_THAT(first.str(), HasSubstr("snapshot v1 at step 2"));

  options.max_steps = 0;
  std::ostringstream second;
  options.out = &second;
  metrics::Registry registry;
  auto resumed = Learner::Create(options, nullptr, &registry);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->steps_done(), 3);
  ASSERT_TRUE((*resumed)->Run().ok());
  EXPECT_EQ((*resumed)->steps_done(), 4);
  EXPECT_THAT(second.str(), ::testing::Not(HasSubstr("step 3/4")));
  EXPECT_THAT(second.str(), HasSubstr("step 4/4"));
  EXPECT_EQ(CountLines(dir + "/learner-test/steps.jsonl"), 4);
  EXPECT_TRUE(fs::exists(dir + "/learner-test/adapter/adapter_config.json"));
}

TEST(LearnerTest, BadInputIsRefusedWithWhatWasWrong) {
  const std::string dir = TestDir();
  metrics::Registry registry;
  LearnerOptions options;
  options.transport = TransportSecurity::Plaintext();
  options.config = TinyRunConfig(dir);
  options.pairs_path = WritePairs(dir, 7);
  auto s = Learner::Create(options, nullptr, &registry);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("has 7 pairs; T*B = 4*2 = 8 are needed"));

  options.pairs_path = WritePairs(dir, 8);
  options.rank = 1;
  s = Learner::Create(options, nullptr, &registry);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("--rank 1 is outside learner.world_size = 1"));

  options.rank = 0;
  options.config.mutable_model()->clear_policy();
  s = Learner::Create(options, nullptr, &registry);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("model.policy"));

  options.config = TinyRunConfig(dir);
  options.pairs_path.clear();  // online without a coordinator
  s = Learner::Create(options, nullptr, &registry);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bpo::learner
