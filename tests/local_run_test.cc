// The distributed run end to end on the tiny fixture model: `bpo local`
// starts the coordinator, 2 learner ranks, 2 actors and a rule annotator as
// separate processes (T = 8, F = 4, B = 4, so F*M = 32 pairs). Faults are
// kill -9 of one process mid-run. After every run the coordinator's store
// must show exactly F*M pairs consumed, each once, in T complete batches,
// with no annotated pair left behind.
#include "tests/testing/local_run.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bpo/v1/common.pb.h"
#include "common/files.h"
#include "common/transport.h"
#include "coordinator/sqlite.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_client.h"
#include "tests/testing/https_client.h"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kSteps = testing::kTinySteps, kBatch = testing::kTinyBatch;

class LocalRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    out_ = (fs::temp_directory_path() /
            absl::StrCat("bpo_local_", getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(out_);
    fs::create_directories(out_);
  }

  // configs/local-tiny.yaml with the output in the test's directory, absolute
  // paths, and the top-level keys of `extra` (YAML lines) replaced.
  std::string Config(const std::string& extra = "") {
    return testing::WriteTinyConfig(out_, extra);
  }

  std::string RunDir() const { return out_ + "/local-tiny"; }

  testing::CommandResult Local(const std::string& config) {
    auto r = testing::RunCommand({BPO_BINARY, "local", "--config", config, "--log_level=warning"},
                                 absl::Seconds(400));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : testing::CommandResult{};
  }

  int64_t Query(const std::string& sql) { return testing::QueryStore(RunDir(), sql); }

  // Starts `bpo local`, waits until `steps` are committed, kills `victim`
  // with SIGKILL and returns the launcher, still running.
  testing::Subprocess StartAndKill(const std::string& config, int steps,
                                   const std::string& victim) {
    auto local =
        testing::Subprocess::Start({BPO_BINARY, "local", "--config", config}, out_ + "/local.log");
    EXPECT_TRUE(local.ok()) << local.status();
    KillWhen(steps, victim);
    return std::move(*local);
  }

  // Waits until `steps` are committed, then kills `victim` (if named).
  void KillWhen(int steps, const std::string& victim) {
    const absl::Time deadline = absl::Now() + absl::Seconds(180);
    while (absl::Now() < deadline && Query("SELECT COUNT(*) FROM steps") < steps) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    if (victim.empty()) return;
    const pid_t pid = testing::ProcessPid(RunDir(), victim);
    EXPECT_GT(pid, 0) << victim;
    if (pid > 0) kill(pid, SIGKILL);
  }

  // Waits for the launcher to exit; its output.
  std::string Wait(testing::Subprocess& local) {
    const absl::Time deadline = absl::Now() + absl::Seconds(300);
    while (local.Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(200));
    EXPECT_FALSE(local.Running()) << "bpo local did not finish";
    std::ifstream in(out_ + "/local.log");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  // The store after a complete run: F*M pairs consumed, each once, in T
  // batches of B; nothing annotated left unused; every consumed pair labelled.
  void ExpectCompleteRun() {
    EXPECT_THAT(testing::CompleteRunViolations(RunDir()), ::testing::IsEmpty());
  }

  std::string out_;
};

TEST_F(LocalRunTest, StrictRunCompletes) {
  auto r = Local(Config());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("8/8 steps, 32 pairs consumed"));
  ExpectCompleteRun();
  // Over mutual TLS by default, with the certificates `bpo local` issued.
  EXPECT_THAT(r.out, HasSubstr("mutual TLS, certificates in " + RunDir() + "/certs"));
  EXPECT_TRUE(fs::exists(RunDir() + "/certs/actor-0.pem"));
  // Again on the finished run: nothing is started, and it succeeds.
  auto again = Local(Config());
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_THAT(again.out, HasSubstr("run local-tiny is already finished (8/8 steps committed)"));
  EXPECT_THAT(again.out, Not(HasSubstr("started coordinator")));
  // Strict: every pair of phase p was sampled from snapshot p.
  EXPECT_EQ(Query("SELECT COUNT(*) FROM pairs WHERE state = 5 AND version != phase"), 0);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM snapshots"), 4);
  // The learners' step logs have all 8 steps.
  std::ifstream steps(RunDir() + "/steps.jsonl");
  int lines = 0;
  for (std::string l; std::getline(steps, l);) ++lines;
  EXPECT_EQ(lines, kSteps);
}

TEST_F(LocalRunTest, ACoordinatorThatCannotStartIsReportedAtOnceWithItsLog) {
  const absl::Time t0 = absl::Now();
  auto r = Local(Config("coordinator: {store: /proc/bpo-no-such-dir/store.db}"));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_LT(absl::Now() - t0, absl::Seconds(30)) << "waited on a dead coordinator";
  EXPECT_THAT(r.err, HasSubstr("coordinator died during start-up (exit status 1)"));
  EXPECT_THAT(r.err, HasSubstr("/proc/bpo-no-such-dir/store.db"));  // from its log
}

TEST_F(LocalRunTest, AsyncRunCompletesWithBoundedStaleness) {
  auto r = Local(Config(
      "schedule: {total_steps: 8, phases: 4, batch_size: 4, mode: async, max_staleness: 1}"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ExpectCompleteRun();
  EXPECT_LE(Query("SELECT MAX(phase - version) FROM pairs WHERE state = 5"), 1);
  EXPECT_GE(Query("SELECT MIN(phase - version) FROM pairs WHERE state = 5"), 0);
}

TEST_F(LocalRunTest, KilledActorIsRestartedAndItsPromptsReleased) {
  auto local = StartAndKill(Config(), 2, "actor-0");
  const std::string out = Wait(local);
  EXPECT_THAT(out, HasSubstr("actor-0 died (killed by signal 9"));
  EXPECT_THAT(out, HasSubstr("restarting it (1/3)"));
  EXPECT_THAT(out, HasSubstr("8/8 steps, 32 pairs consumed"));
  ExpectCompleteRun();
}

TEST_F(LocalRunTest, KilledAnnotatorIsRestarted) {
  auto local = StartAndKill(Config(), 3, "annotator-0");
  const std::string out = Wait(local);
  EXPECT_THAT(out, HasSubstr("annotator-0 died (killed by signal 9"));
  EXPECT_THAT(out, HasSubstr("8/8 steps, 32 pairs consumed"));
  ExpectCompleteRun();
}

TEST_F(LocalRunTest, KilledCoordinatorRestartsFromItsStore) {
  auto local = StartAndKill(Config(), 3, "coordinator");
  const std::string out = Wait(local);
  EXPECT_THAT(out, HasSubstr("coordinator died (killed by signal 9"));
  EXPECT_THAT(out, HasSubstr("8/8 steps, 32 pairs consumed"));
  ExpectCompleteRun();
}

TEST_F(LocalRunTest, KilledLearnerStopsTheRunWhichResumesFromItsCheckpoint) {
  const std::string config = Config();
  auto local = StartAndKill(config, 3, "learner-1");
  const std::string out = Wait(local);
  EXPECT_THAT(out, HasSubstr("learner-1 died (killed by signal 9"));
  EXPECT_THAT(out, HasSubstr("stopping the run (launch.on_learner_failure: stop)"));
  const int64_t committed = Query("SELECT COUNT(*) FROM steps");
  EXPECT_GE(committed, 3);
  EXPECT_LT(committed, kSteps);
  auto r = Local(config);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ExpectCompleteRun();
  std::ifstream log(RunDir() + "/logs/learner-0.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("resumed from"));
}

TEST_F(LocalRunTest, KilledLearnerRestartsAllRanksWhenConfigured) {
  auto local = StartAndKill(
      Config("launch: {actors: 2, annotators: 1, on_learner_failure: restart}"), 3, "learner-0");
  const std::string out = Wait(local);
  EXPECT_THAT(out, HasSubstr("restarting all learner ranks from the last checkpoint"));
  EXPECT_THAT(out, HasSubstr("8/8 steps, 32 pairs consumed"));
  ExpectCompleteRun();
}

TEST_F(LocalRunTest, CtrlCStopsEveryProcess) {
  auto local =
      testing::Subprocess::Start({BPO_BINARY, "local", "--config", Config()}, out_ + "/local.log");
  ASSERT_TRUE(local.ok()) << local.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline && Query("SELECT COUNT(*) FROM steps") < 1) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::vector<pid_t> children;
  for (const auto& entry : fs::directory_iterator(RunDir() + "/pids")) {
    std::ifstream f(entry.path());
    pid_t pid = -1;
    f >> pid;
    children.push_back(pid);
  }
  ASSERT_EQ(children.size(), 6u);
  kill(local->pid(), SIGINT);
  const std::string out = Wait(*local);
  EXPECT_THAT(out, HasSubstr("interrupted; stopping every process"));
  for (pid_t pid : children) EXPECT_NE(kill(pid, 0), 0) << "child " << pid << " still runs";
  // The store is consistent: whatever was committed stays, nothing is half done.
  EXPECT_EQ(Query("SELECT COUNT(*) FROM pairs WHERE state = 5"),
            kBatch * Query("SELECT COUNT(*) FROM steps"));
}

// A strict run is a function of its config: the same pairs consumed in the
// same batches, the same labels and bitwise the same final adapter with 1
// actor, with 3, and with an actor and a learner rank killed mid-run. Which
// actor takes which lease group, and when, must not matter.
TEST_F(LocalRunTest, StrictRunsAreBitwiseReproducibleWhateverTheActorsAndKills) {
  const std::string base = out_;
  struct Outcome {
    std::string adapter_sha256, batches, labels;
  };
  auto outcome = [&]() {
    Outcome o;
    auto adapter = ReadWholeFile(RunDir() + "/adapter/adapter_model.safetensors");
    EXPECT_TRUE(adapter.ok()) << adapter.status();
    if (adapter.ok()) o.adapter_sha256 = Sha256Hex(*adapter);
    // Each batch's pairs in order, with their prompts, both responses and
    // the behavior log-probs the actor computed; the labels the learner used.
    auto db = coordinator::Database::Open(RunDir() + "/coordinator.db", {.fsync = false});
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return o;
    auto st = (*db)->Prepare(
        "SELECT step, pos, prompt_idx, sampled, label FROM pairs WHERE state = 5 "
        "ORDER BY step, pos");
    EXPECT_TRUE(st.ok());
    while (st.ok() && *(*st)->Step()) {
      bpo::v1::SampledPair pair;
      bpo::v1::Label label;
      EXPECT_TRUE(pair.ParseFromString((*st)->Text(3)));
      EXPECT_TRUE(label.ParseFromString((*st)->Text(4)));
      absl::StrAppend(&o.batches, (*st)->Int(0), ":", (*st)->Int(1), " ", pair.pair_id(), " q",
                      (*st)->Int(2), " v", pair.behavior_version(), " a[",
                      absl::StrJoin(pair.a().token_ids(), ","), "] ", pair.a().behavior_logprob(),
                      " b[", absl::StrJoin(pair.b().token_ids(), ","), "] ",
                      pair.b().behavior_logprob(), "\n");
      absl::StrAppend(&o.labels, pair.pair_id(), "=", label.choice(), " ");
    }
    return o;
  };
  auto use = [&](const std::string& name) {
    out_ = base + "/" + name;
    fs::create_directories(out_);
  };
  use("one-actor");
  auto one = Local(Config("launch: {actors: 1, annotators: 1}"));
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
  ExpectCompleteRun();
  const Outcome reference = outcome();
  ASSERT_EQ(reference.adapter_sha256.size(), 64u);
  ASSERT_FALSE(reference.batches.empty());

  use("three-actors");
  auto three = Local(Config("launch: {actors: 3, annotators: 2}"));
  ASSERT_EQ(three.exit_code, 0) << three.out << three.err;
  ExpectCompleteRun();
  Outcome o = outcome();
  EXPECT_EQ(o.batches, reference.batches);
  EXPECT_EQ(o.labels, reference.labels);
  EXPECT_EQ(o.adapter_sha256, reference.adapter_sha256);

  use("killed");
  auto local = StartAndKill(
      Config("launch: {actors: 2, annotators: 1, on_learner_failure: restart}"), 2, "actor-0");
  KillWhen(5, "learner-1");
  const std::string log = Wait(local);
  EXPECT_THAT(log, HasSubstr("actor-0 died (killed by signal 9"));
  EXPECT_THAT(log, HasSubstr("restarting all learner ranks from the last checkpoint"));
  ExpectCompleteRun();
  o = outcome();
  EXPECT_EQ(o.batches, reference.batches);
  EXPECT_EQ(o.labels, reference.labels);
  EXPECT_EQ(o.adapter_sha256, reference.adapter_sha256);
}

// deploy/grafana/bpo-run.json is valid and every metric its panels query is
// served by some process of a live run.
TEST_F(LocalRunTest, EveryDashboardMetricIsServedDuringARun) {
  std::ifstream in(absl::StrCat(BPO_SOURCE_DIR, "/deploy/grafana/bpo-run.json"));
  const nlohmann::json dashboard = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(dashboard.is_discarded()) << "not valid JSON";
  ASSERT_TRUE(dashboard.contains("panels"));
  std::set<std::string> wanted;
  const std::regex metric("\\b((bpo|process)_[a-z_]+)");
  for (const auto& panel : dashboard["panels"]) {
    ASSERT_TRUE(panel.contains("title") && panel.contains("gridPos") && panel.contains("targets"));
    ASSERT_FALSE(panel["targets"].empty()) << panel["title"];
    for (const auto& target : panel["targets"]) {
      const std::string expr = target["expr"].get<std::string>();
      for (std::sregex_iterator it(expr.begin(), expr.end(), metric), end; it != end; ++it) {
        wanted.insert((*it)[1]);
      }
    }
  }
  ASSERT_GT(wanted.size(), 20u);

  auto local = StartAndKill(Config("schedule: {total_steps: 8, phases: 4, batch_size: 4}"), 3, "");
  std::set<std::string> served;
  // Every process listens on port 0 and publishes its address; the launcher
  // lists each in the targets file as it appears.
  size_t processes = 0;
  for ([[maybe_unused]] const auto& pid : fs::directory_iterator(RunDir() + "/pids")) ++processes;
  nlohmann::json targets;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60); absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(100))) {
    std::ifstream targets_file(RunDir() + "/prometheus-targets.json");
    targets = nlohmann::json::parse(targets_file, nullptr, false);
    if (targets.is_array() && targets.size() == processes) break;
  }
  ASSERT_TRUE(targets.is_array() && targets.size() == processes) << targets.dump();
  // Scraped over HTTPS as Prometheus would, with the run's observer
  // certificate that `bpo local` issued.
  bpo::v1::RunConfig run;
  run.mutable_security()->set_dir(RunDir() + "/certs");
  absl::StatusOr<TransportSecurity> scraper = LoadTransport(run, "prometheus");
  ASSERT_TRUE(scraper.ok()) << scraper.status();
  for (const auto& group : targets) {
    const std::string address = group["targets"][0].get<std::string>();
    const auto colon = address.rfind(':');
    auto r = testing::HttpsGet(address.substr(0, colon), std::stoi(address.substr(colon + 1)),
                               "/metrics", *scraper);
    ASSERT_TRUE(r.ok()) << group["labels"]["process"] << ": " << r.status();
    for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
      if (line.empty() || line[0] == '#') continue;
      served.insert(std::string(line.substr(0, line.find_first_of("{ "))));
    }
  }
  for (const std::string& name : wanted)
    EXPECT_TRUE(served.count(name)) << name << " is not served";
  Wait(local);
}

}  // namespace
}  // namespace bpo
