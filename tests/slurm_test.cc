// `bpo deploy slurm` on a real Slurm: a one-host cluster (munged with its own
// key and socket, slurmctld, and two virtual nodes, `slurmd -N node1` and
// `-N node2`) in a private temporary directory runs the rendered batch script
// of configs/local-tiny.yaml (2 learner ranks over Gloo, 2 actors, a rule
// annotator, mutual TLS), and the run's store must hold a complete run: every
// pair consumed once, every step committed, the adapter exported. One job in
// one allocation over both nodes; one heterogeneous job, requeued halfway,
// that resumes from the store and the checkpoints. And the GPU layout, with
// a stand-in for bpo that records where each process ran and how many GPUs
// Slurm gave it (the nodes' GPUs are device files, not GPUs).
//
// ctest starts this binary under tests/testing/in_private_network (a private
// network namespace: Slurm's fixed ports are free there, and the daemons
// listen nowhere else). The daemons are this process's children, stopped by
// their pids (SIGTERM, then SIGKILL) when the suite ends, also on failure;
// a test's jobs are cancelled first.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/local_run.h"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs a Slurm client command (SLURM_CONF is set for the whole process).
testing::CommandResult Slurm(const std::vector<std::string>& argv) {
  absl::StatusOr<testing::CommandResult> r = testing::RunCommand(argv, absl::Seconds(30));
  return r.ok() ? *r : testing::CommandResult{-1, "", std::string(r.status().message())};
}

// The one-host cluster: munged, slurmctld and slurmd for node1 and node2, in
// `dir`, each a child of this process in the foreground.
class Cluster {
 public:
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(const fs::path& dir) {
    auto cluster = std::unique_ptr<Cluster>(new Cluster(dir));
    if (absl::Status s = cluster->Run(); !s.ok()) return s;
    return cluster;
  }

  // Stops the daemons, last started first: the slurmds, slurmctld, munged.
  ~Cluster() {
    while (!daemons_.empty()) daemons_.pop_back();
  }

  // The daemons' logs, for a failure's message.
  std::string Logs() const {
    std::string out;
    for (const char* name :
         {"munged.log", "slurmctld.log", "slurmd-node1.log", "slurmd-node2.log"}) {
      absl::StrAppend(&out, "==> ", name, " <==\n", ReadFile(dir_ / "log" / name), "\n");
    }
    return out;
  }

  // Cancels every job and waits (up to 60 s) until none is left, so that no
  // job step outlives the daemons.
  void CancelAllJobs() {
    Slurm({"scancel", "--full", "--user", std::to_string(getuid())});
    for (int i = 0; i < 120; ++i) {
      testing::CommandResult q = Slurm({"squeue", "-h"});
      if (q.exit_code == 0 && q.out.empty()) return;
      absl::SleepFor(absl::Milliseconds(500));
    }
  }

 private:
  explicit Cluster(fs::path dir) : dir_(std::move(dir)) {}

  absl::Status Run() {
    for (const char* sub : {"munge", "state", "spool", "log"}) fs::create_directories(dir_ / sub);
    fs::permissions(dir_ / "munge", fs::perms::owner_all);
    const fs::path key = dir_ / "munge" / "munge.key";
    {
      std::ifstream random("/dev/urandom", std::ios::binary);
      std::string bytes(1024, '\0');
      random.read(bytes.data(), bytes.size());
      std::ofstream(key, std::ios::binary) << bytes;
    }
    fs::permissions(key, fs::perms::owner_read);
    const std::string socket = (dir_ / "munge" / "munge.socket").string();
    const std::string user = testing::RunCommand({"id", "-un"})->out;
    const std::string conf = (dir_ / "slurm.conf").string();
    std::ofstream(conf) << absl::StrCat(
        "ClusterName=bpotest\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=6817\n",
        "SlurmUser=", absl::StripAsciiWhitespace(user),
        "\nSlurmdUser=", absl::StripAsciiWhitespace(user),
        "\nAuthType=auth/munge\nAuthInfo=socket=", socket,
        "\nCredType=cred/munge\nStateSaveLocation=", (dir_ / "state").string(),
        "\nSlurmdSpoolDir=", (dir_ / "spool").string(),
        "/%n\nSlurmctldPidFile=", (dir_ / "slurmctld.pid").string(),
        "\nSlurmdPidFile=", (dir_ / "slurmd-%n.pid").string(),
        "\nSlurmctldLogFile=", (dir_ / "log" / "slurmctld.log").string(),
        "\nSlurmdLogFile=", (dir_ / "log").string(), "/slurmd-%n.log\n",
        // No cgroups: processes are tracked through /proc, tasks not bound.
        "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n",
        "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n",
        // The virtual nodes claim more CPUs than this machine may have.
        "SlurmdParameters=config_overrides\n",
        // Heterogeneous jobs start only from the backfill scheduler.
        "SchedulerType=sched/backfill\nSchedulerParameters=bf_interval=1\n",
        "MpiDefault=none\nReturnToService=2\nJobCompType=jobcomp/none\n",
        "AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n",
        "MinJobAge=600\nKillWait=10\n",
        // Four GPUs a node, as device files Slurm counts and hands out.
        "GresTypes=gpu\n",
        "NodeName=node1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=6821 CPUs=16 "
        "RealMemory=4000 Gres=gpu:4\n",
        "NodeName=node2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=6822 CPUs=16 "
        "RealMemory=4000 Gres=gpu:4\n",
        "PartitionName=debug Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP\n");
    fs::create_directories(dir_ / "gpus");
    for (int i = 0; i < 4; ++i) std::ofstream(dir_ / "gpus" / absl::StrCat("nvidia", i));
    std::ofstream(dir_ / "gres.conf")
        << "Name=gpu File=" << (dir_ / "gpus").string() << "/nvidia[0-3]\n";
    setenv("SLURM_CONF", conf.c_str(), 1);

    auto start = [&](std::vector<std::string> argv, const std::string& log) -> absl::Status {
      absl::StatusOr<testing::Subprocess> p =
          testing::Subprocess::Start(argv, (dir_ / "log" / log).string());
      if (!p.ok()) return p.status();
      daemons_.push_back(std::make_unique<testing::Subprocess>(std::move(*p)));
      return absl::OkStatus();
    };
    const std::string munge = (dir_ / "munge").string();
    if (absl::Status s = start({"munged", "--foreground", "--force", "--key-file=" + key.string(),
                                "--socket=" + socket, "--pid-file=" + munge + "/munged.pid",
                                "--seed-file=" + munge + "/munged.seed",
                                "--log-file=" + (dir_ / "log" / "munged.log").string()},
                               "munged.out");
        !s.ok()) {
      return s;
    }
    for (int i = 0; i < 100 && !fs::exists(socket); ++i) absl::SleepFor(absl::Milliseconds(50));
    if (absl::Status s = start({"slurmctld", "-D", "-i", "-f", conf}, "slurmctld.out"); !s.ok()) {
      return s;
    }
    for (const char* node : {"node1", "node2"}) {
      if (absl::Status s = start({"slurmd", "-D", "-f", conf, "-N", node},
                                 absl::StrCat("slurmd-", node, ".out"));
          !s.ok()) {
        return s;
      }
    }
    // Both nodes idle.
    for (int i = 0; i < 200; ++i) {
      testing::CommandResult r = Slurm({"sinfo", "-h", "-N", "-o", "%N %T"});
      if (r.exit_code == 0 && absl::StrContains(r.out, "node1 idle") &&
          absl::StrContains(r.out, "node2 idle")) {
        return absl::OkStatus();
      }
      for (const auto& d : daemons_) {
        if (!d->Running()) return absl::UnavailableError("a Slurm daemon exited:\n" + Logs());
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::DeadlineExceededError("the Slurm nodes did not come up within 20 s:\n" + Logs());
  }

  const fs::path dir_;
  std::vector<std::unique_ptr<testing::Subprocess>> daemons_;  // in start order
};

class SlurmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_STREQ(std::getenv("BPO_PRIVATE_NETWORK_STAGE"), "done")
        << "run this test under tests/testing/in_private_network (ctest does): it starts Slurm "
           "daemons on fixed ports";
    for (const char* program : {"munged", "slurmctld", "slurmd", "sbatch", "ip"}) {
      ASSERT_FALSE(testing::FindProgram(program).empty())
          << program << " is not installed: run scripts/setup-deps (slurm-wlm, munge, iproute2)";
    }
    std::string tmpl = (fs::temp_directory_path() / "bpo_slurm_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = new fs::path(tmpl);
    const absl::Time t0 = absl::Now();
    absl::StatusOr<std::unique_ptr<Cluster>> cluster = Cluster::Start(*dir_ / "cluster");
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    std::cout << "one-host Slurm cluster up in " << absl::FormatDuration(absl::Now() - t0) << "\n";
  }

  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    if (dir_ != nullptr && !HasFailure()) fs::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    run_ = *dir_ / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(run_);
  }

  void TearDown() override {
    cluster_->CancelAllJobs();
    if (HasFailure()) {
      std::cerr << "logs in " << run_ / "local-tiny" / "logs"
                << "\n";
      for (const auto& entry : fs::directory_iterator(run_ / "local-tiny" / "logs")) {
        std::cerr << "==> " << entry.path().filename() << " <==\n" << ReadFile(entry.path());
      }
      std::cerr << cluster_->Logs();
    }
  }

  // Renders the tiny config's job with `flags`; returns the script's path.
  // `model`: the config's model section instead of the tiny policy's.
  std::string Render(const std::vector<std::string>& flags, const std::string& extra = "",
                     const std::string& model = "") {
    const std::string config = testing::WriteTinyConfig(run_.string(), extra);
    if (!model.empty()) {
      std::string yaml = ReadFile(config);
      const size_t at = yaml.find("\nmodel: ");
      yaml.replace(at + 1, yaml.find('\n', at + 1) - at - 1, "model: " + model);
      std::ofstream(config) << yaml;
    }
    std::vector<std::string> argv = {BPO_BINARY, "deploy", "slurm", "--config=" + config,
                                     "--out=" + (run_ / "job").string()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    absl::StatusOr<testing::CommandResult> r = testing::RunCommand(argv);
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->out + r->err : r.status().ToString());
    return (run_ / "job" / "bpo.sbatch").string();
  }

  // sbatch; returns the job id.
  int Submit(const std::string& script) {
    testing::CommandResult r = Slurm({"sbatch", "--parsable", script});
    int id = -1;
    EXPECT_TRUE(r.exit_code == 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(r.out), &id))
        << r.out << r.err;
    return id;
  }

  // A field of `scontrol show job` ("JobState", "ExitCode", "Restarts").
  static std::string JobField(int id, const std::string& field) {
    testing::CommandResult r = Slurm({"scontrol", "show", "job", "-o", std::to_string(id)});
    for (absl::string_view kv : absl::StrSplit(r.out, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
      if (absl::StartsWith(kv, field + "=")) return std::string(kv.substr(field.size() + 1));
    }
    return "";
  }

  // Waits (up to `limit`) until the job has ended; returns its state.
  std::string AwaitEnd(int id, absl::Duration limit = absl::Seconds(150)) {
    const absl::Time deadline = absl::Now() + limit;
    std::string state;
    while (absl::Now() < deadline) {
      state = JobField(id, "JobState");
      if (state == "COMPLETED" || state == "FAILED" || state == "CANCELLED" || state == "TIMEOUT" ||
          state == "NODE_FAIL" || state == "OUT_OF_MEMORY") {
        return state;
      }
      absl::SleepFor(absl::Milliseconds(250));
    }
    return "still " + state + " after " + absl::FormatDuration(limit);
  }

  fs::path RunDir() const { return run_ / "local-tiny"; }

  void ExpectCompleteRun() {
    EXPECT_THAT(testing::CompleteRunViolations(RunDir().string()), ::testing::IsEmpty());
    // Every process's /metrics for Prometheus, with the run's labels.
    const nlohmann::json targets =
        nlohmann::json::parse(ReadFile(RunDir() / "prometheus-targets.json"), nullptr, false);
    ASSERT_TRUE(targets.is_array()) << ReadFile(RunDir() / "prometheus-targets.json");
    std::vector<std::string> processes;
    for (const auto& t : targets) {
      processes.push_back(t["labels"]["process"]);
      EXPECT_EQ(t["labels"]["run_id"], "local-tiny");
      EXPECT_FALSE(t["labels"]["slurm_job_id"].get<std::string>().empty());
      EXPECT_THAT(t["targets"][0].get<std::string>(), ::testing::StartsWith("localhost:"));
    }
    EXPECT_THAT(processes, ::testing::ElementsAre("coordinator", "learner-0", "learner-1",
                                                  "actor-0", "actor-1", "annotator-0"));
    EXPECT_EQ(targets[2]["labels"]["role"], "learner");
    EXPECT_EQ(targets[2]["labels"]["rank"], "1");
  }

  static Cluster* cluster_;
  static fs::path* dir_;
  fs::path run_;
};

Cluster* SlurmTest::cluster_ = nullptr;
fs::path* SlurmTest::dir_ = nullptr;

TEST_F(SlurmTest, RenderedJobRunsTheTinyRunToCompletionOverTwoNodes) {
  const std::string script = Render({"--nodes=2", "--time=00:10:00"});
  const absl::Time t0 = absl::Now();
  const int id = Submit(script);
  ASSERT_GT(id, 0);
  ASSERT_EQ(AwaitEnd(id), "COMPLETED");
  std::cout << "job " << id << " ran in " << absl::FormatDuration(absl::Now() - t0) << "\n";
  EXPECT_EQ(JobField(id, "ExitCode"), "0:0");
  ExpectCompleteRun();
  const std::string out = ReadFile(RunDir() / "logs" / absl::StrCat("slurm-", id, ".out"));
  EXPECT_THAT(out, HasSubstr("bpo.sbatch: run finished"));
  for (const char* log :
       {"coordinator", "learner-0", "learner-1", "actor-0", "actor-1", "annotator-0"}) {
    EXPECT_TRUE(fs::exists(RunDir() / "logs" / absl::StrCat(log, ".log"))) << log;
  }
  // Certificates of the run CA for every process, in the run directory.
  EXPECT_TRUE(fs::exists(RunDir() / "certs" / "learner-1.pem"));
  EXPECT_TRUE(fs::exists(RunDir() / "certs" / "prometheus.pem"));

  // Submitted again, the finished run exits at once.
  const int again = Submit(script);
  ASSERT_EQ(AwaitEnd(again, absl::Seconds(60)), "COMPLETED");
  EXPECT_THAT(ReadFile(RunDir() / "logs" / absl::StrCat("slurm-", again, ".out")),
              HasSubstr("the run is finished already"));
}

TEST_F(SlurmTest, HeterogeneousJobRequeuedHalfwayResumesFromTheStoreAndCheckpoints) {
  const std::string script = Render({"--hetjob"});
  const absl::Time t0 = absl::Now();
  const int id = Submit(script);
  ASSERT_GT(id, 0);
  // Requeue once a few steps are committed (as a preemption would).
  int64_t steps = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline && steps < 3) {
    steps = testing::QueryStore(RunDir().string(), "SELECT COUNT(*) FROM steps");
    ASSERT_NE(JobField(id, "JobState"), "COMPLETED") << "the run ended before the requeue";
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_GE(steps, 3);
  ASSERT_LT(steps, testing::kTinySteps);
  testing::CommandResult requeue = Slurm({"scontrol", "requeue", std::to_string(id)});
  ASSERT_EQ(requeue.exit_code, 0) << requeue.err;
  // Slurm holds a requeued job for two minutes (its begin time, set once the
  // requeue is through); let it start at once.
  for (int i = 0; i < 200; ++i) {
    const std::string state = JobField(id, "JobState");
    if (JobField(id, "Restarts") == "1" && (state == "RUNNING" || state == "COMPLETED")) break;
    // A heterogeneous job's components are held one by one.
    if (absl::StrContains(Slurm({"scontrol", "show", "job", "-o", std::to_string(id)}).out,
                          "Reason=BeginTime")) {
      Slurm({"scontrol", "update", absl::StrCat("JobId=", id), "StartTime=now"});
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(AwaitEnd(id), "COMPLETED");
  std::cout << "heterogeneous job " << id << " ran, requeue included, in "
            << absl::FormatDuration(absl::Now() - t0) << "\n";
  EXPECT_EQ(JobField(id, "Restarts"), "1");
  EXPECT_EQ(JobField(id, "ExitCode"), "0:0");
  ExpectCompleteRun();
  const std::string out = ReadFile(RunDir() / "logs" / absl::StrCat("slurm-", id, ".out"));
  EXPECT_THAT(out, HasSubstr("signalled (preempted, requeued or cancelled)"));
  EXPECT_THAT(out, HasSubstr(", start 2, "));
  EXPECT_THAT(out, HasSubstr("bpo.sbatch: run finished"));
  // The second start resumed: its learners loaded a checkpoint.
  EXPECT_THAT(ReadFile(RunDir() / "logs" / "learner-0.log"), HasSubstr("resumed from "));
}

// Stands in for bpo in a job on GPUs: each process writes a line of where it
// ran and which GPUs it got; the learner ranks finish the run.
constexpr char kFakeBpo[] = R"sh(#!/bin/bash
run=$FAKE_RUN_DIR
where() { echo "$1 node=$SLURMD_NODENAME local=$SLURM_LOCALID gpus=${SLURM_GPUS_ON_NODE:-0}" >>"$run/where"; }
serve() { trap 'exit 0' TERM INT; while true; do sleep 0.1; done; }
case "$1 $2" in
  "deploy status") [[ -f $run/finished ]] ;;
  "deploy watch") serve ;;
  certs*) ;;
  coordinator*)
    where coordinator
    for a in "$@"; do [[ $a == --address_file=* ]] && echo '{"grpc": "localhost:1"}' >"${a#*=}"; done
    serve ;;
  learner*)
    where "learner-$SLURM_PROCID"
    sleep 2
    touch "$run/finished" ;;
  *) where "$(for a in "$@"; do [[ $a == --name=* ]] && echo "${a#*=}"; done)"; serve ;;
esac
)sh";

class SlurmGpuLayoutTest : public SlurmTest {
 protected:
  // Renders a job of the tiny model on GPUs with `extra` and `flags`, runs it
  // with the stand-in for bpo, and returns the stand-in's lines, sorted.
  std::vector<std::string> RunWithFakeBpo(const std::string& extra,
                                          const std::vector<std::string>& flags) {
    const std::string fixtures = absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/");
    const std::string script =
        Render(flags,
               absl::StrCat("schedule: {total_steps: 6, phases: 3, batch_size: 6}\n"
                            "annotation: {kind: rm}\nlaunch: {actors: 1, annotators: 1}\n",
                            extra),
               absl::StrCat("{policy: ", fixtures, "gemma, reward_model: ", fixtures,
                            "deberta, device: cuda}"));
    const fs::path fake = run_ / "fake-bpo";
    std::ofstream(fake) << kFakeBpo;
    fs::permissions(fake, fs::perms::owner_all);
    setenv("BPO", fake.c_str(), 1);
    setenv("FAKE_RUN_DIR", run_.c_str(), 1);
    const int id = Submit(script);
    unsetenv("BPO");
    unsetenv("FAKE_RUN_DIR");
    EXPECT_GT(id, 0);
    EXPECT_EQ(AwaitEnd(id, absl::Seconds(60)), "COMPLETED");
    EXPECT_EQ(JobField(id, "ExitCode"), "0:0");
    std::vector<std::string> lines =
        absl::StrSplit(ReadFile(run_ / "where"), '\n', absl::SkipEmpty());
    std::sort(lines.begin(), lines.end());
    return lines;
  }
};

TEST_F(SlurmGpuLayoutTest, OneAllocationGivesEachStepItsGpusOnTheNodesThePlanSays) {
  // 6 ranks, 3 on each of 2 nodes of 4 GPUs; the actor and the reward-model
  // annotator on the GPU left on each; the coordinator on node 1, no GPU.
  EXPECT_THAT(RunWithFakeBpo("learner: {world_size: 6, backend: nccl}",
                             {"--gpus_per_node=4", "--cpus_per_task=2"}),
              ::testing::ElementsAre(
                  "actor-0 node=node1 local=0 gpus=1", "annotator-0 node=node2 local=0 gpus=1",
                  "coordinator node=node1 local=0 gpus=0", "learner-0 node=node1 local=0 gpus=3",
                  "learner-1 node=node1 local=1 gpus=3", "learner-2 node=node1 local=2 gpus=3",
                  "learner-3 node=node2 local=0 gpus=3", "learner-4 node=node2 local=1 gpus=3",
                  "learner-5 node=node2 local=2 gpus=3"));
}

TEST_F(SlurmGpuLayoutTest, HeterogeneousJobKeepsTheCoordinatorOffTheGpuNode) {
  // Component 0: the coordinator on node1; component 1: node2's 4 GPUs for
  // 2 ranks, the actor and the reward-model annotator.
  EXPECT_THAT(RunWithFakeBpo("learner: {world_size: 2, backend: nccl}",
                             {"--hetjob", "--gpus_per_node=4", "--cpus_per_task=2"}),
              ::testing::ElementsAre(
                  "actor-0 node=node2 local=0 gpus=1", "annotator-0 node=node2 local=0 gpus=1",
                  "coordinator node=node1 local=0 gpus=0", "learner-0 node=node2 local=0 gpus=2",
                  "learner-1 node=node2 local=1 gpus=2"));
}

}  // namespace
}  // namespace bpo
