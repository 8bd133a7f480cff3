// RenderSlurmJob: the batch script and effective config `bpo deploy slurm`
// writes. The script is run for real on a one-host Slurm by
// tests/slurm_test.cc; here: what it says, that bash parses it, and the
// configs it refuses.
#include "launch/slurm_script.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
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
using ::testing::Not;

// A config of the top-level sections below, `extra`'s replacing them.
SlurmRenderOptions Options(const std::string& extra, SlurmOptions slurm = {}) {
  SlurmRenderOptions o;
  o.config =
      testing::ConfigFromSections({{"run_id", "r1"},
                                   {"output_dir", "/shared/runs"},
                                   {"schedule", "{total_steps: 8, phases: 4, batch_size: 4}"},
                                   {"model", "{policy: /models/p, reward_model: /models/rm}"},
                                   {"data", "{prompts: /p.jsonl, format: jsonl}"},
                                   {"learner", "{world_size: 2, checkpoint_every: 1}"},
                                   {"launch", "{actors: 2, annotators: 1, max_restarts: 5}"}},
                                  extra, "/cfg/run.yaml", "/cfg");
  o.config_source = "/cfg/run.yaml";
  o.out_dir = "/shared/runs/r1/slurm";
  o.bpo = "/opt/bpo/bin/bpo";
  o.slurm = slurm;
  return o;
}

// bash -n: the script parses.
void ExpectBashParses(const std::string& script) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/bpo-", getpid(), ".sbatch");
  std::ofstream(path) << script;
  EXPECT_EQ(std::system(absl::StrCat("bash -n ", path).c_str()), 0) << script;
  if (!::testing::Test::HasFailure()) std::filesystem::remove(path);
}

TEST(SlurmScriptTest, CpuJobRunsEveryProcessOfTheConfigWithItsNameAndPlace) {
  absl::StatusOr<SlurmJob> job =
      RenderSlurmJob(Options("annotation: {kind: rule}\n", {.nodes = 2, .time = "00:30:00"}));
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string& s = job->sbatch;
  for (const char* line :
       {"#SBATCH --job-name=bpo-r1\n", "#SBATCH --output=/shared/runs/r1/logs/slurm-%j.out\n",
        "#SBATCH --open-mode=append\n", "#SBATCH --requeue\n", "#SBATCH --time=00:30:00\n",
        "#SBATCH --nodes=2\n", "#SBATCH --ntasks-per-node=3\n", "#SBATCH --cpus-per-task=1\n",
        "export BPO=${BPO:-/opt/bpo/bin/bpo}\n",
        "export BPO_CONFIG=/shared/runs/r1/slurm/run.yaml\n",
        "export BPO_RUN_DIR=/shared/runs/r1\n", "CERTS=/shared/runs/r1/certs\n", "LEARNERS=2\n",
        "ACTORS=2\n", "ANNOTATORS=1\n", "MAX_RESTARTS=5\n", "RESTART_WORKERS=1\n",
        "RESTART_LEARNERS=0\n", "LISTEN_HOST=0.0.0.0\n"}) {
    EXPECT_THAT(s, HasSubstr(line));
  }
  EXPECT_THAT(s, Not(HasSubstr("gpus")));
  EXPECT_THAT(s, Not(HasSubstr("hetjob")));
  EXPECT_THAT(s, Not(HasSubstr("--partition")));
  // Certificates for every process, named as the processes are.
  EXPECT_THAT(s, HasSubstr("\"$BPO\" certs init --config=\"$BPO_CONFIG\" --dir=\"$CERTS\""));
  EXPECT_THAT(s, HasSubstr("--hosts=\"$HOSTS\""));
  EXPECT_THAT(s, HasSubstr("HOSTS=$(nodes0 0 ${#NODES0[@]})\n"));
  EXPECT_THAT(s, HasSubstr("issue learner \"learner-$i\""));
  EXPECT_THAT(s, HasSubstr("issue observer prometheus"));
  // The coordinator on node 0, publishing its address.
  EXPECT_THAT(
      s, HasSubstr("keep coordinator --exact --nodes=1 --ntasks=1 "
                   "--cpus-per-task=$CPUS_PER_TASK --nodelist=\"$(nodes0 0 1)\" \\\n"
                   "  \"$BPO\" coordinator --config=\"$BPO_CONFIG\" "
                   "--listen=\"$LISTEN_HOST:0\" --address_file=\"$BPO_ADDR/coordinator.json\""));
  // Both learner ranks in one step on node 1, meeting there.
  EXPECT_THAT(s, HasSubstr("--exact --nodes=1 --ntasks=2 --cpus-per-task=$CPUS_PER_TASK "
                           "--nodelist=\"$(nodes0 1 1)\" --ntasks-per-node=2"));
  EXPECT_THAT(s, HasSubstr("--rank=\"$SLURM_PROCID\" --rendezvous=\"$BPO_RENDEZVOUS\""));
  EXPECT_THAT(s, HasSubstr("scontrol show node -o \"${NODES0[1]}\""));
  EXPECT_THAT(s, HasSubstr("RENDEZVOUS_PORT=$((20000 + SLURM_JOB_ID % 10000))\n"));
  EXPECT_THAT(s, HasSubstr("--output=\"$LOGS/learner-%t.log\""));
  // The workers, each named and placed.
  EXPECT_THAT(s, HasSubstr("keep actor-1 --exact --nodes=1 --ntasks=1 "
                           "--cpus-per-task=$CPUS_PER_TASK --nodelist=\"$(nodes0 1 1)\" \\\n"
                           "  \"$BPO\" actor --config=\"$BPO_CONFIG\" --name=actor-1 "
                           "--address_file=\"$BPO_ADDR/actor-1.json\"\n"));
  EXPECT_THAT(s, HasSubstr("\"$BPO\" annotator --config=\"$BPO_CONFIG\" --name=annotator-0"));
  EXPECT_THAT(s, HasSubstr("\"$BPO\" deploy watch --config=\"$BPO_CONFIG\" "
                           "--target_labels=\"slurm_job_id=$SLURM_JOB_ID\""));
  EXPECT_THAT(s, HasSubstr("if \"$BPO\" deploy status --config=\"$BPO_CONFIG\"; then"));
  ExpectBashParses(s);
}

TEST(SlurmScriptTest, EffectiveConfigPointsEveryEndpointAtTheRunDirectoryOrPortZero) {
  absl::StatusOr<SlurmJob> job = RenderSlurmJob(Options(""));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->config.endpoints().coordinator(),
            "file:/shared/runs/r1/addresses/coordinator.json");
  EXPECT_EQ(job->config.endpoints().snapshots(), "0.0.0.0:0");
  EXPECT_EQ(job->config.endpoints().metrics(), "0.0.0.0:0");
  EXPECT_EQ(job->run_dir, "/shared/runs/r1");
  absl::StatusOr<RunConfigFile> back =
      ParseRunConfig(job->config_yaml, "run.yaml", "/elsewhere", {.check_files = false});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(FormatRunConfigYaml(back->config), FormatRunConfigYaml(job->config));
  // Everything else is the given config.
  bpo::v1::RunConfig given = Options("").config;
  *given.mutable_endpoints() = job->config.endpoints();
  EXPECT_EQ(FormatRunConfigYaml(given), FormatRunConfigYaml(job->config));
}

TEST(SlurmScriptTest, GpuJobGivesGpuStepsOneGpuATaskAndTheOthersNone) {
  absl::StatusOr<SlurmJob> job = RenderSlurmJob(Options(
      "model: {device: cuda, policy: /p, reward_model: /rm}\nlearner: {world_size: 4, backend: "
      "nccl}\n"
      "launch: {actors: 3, annotators: 1, on_learner_failure: restart, max_restarts: 5}\n",
      {.gpus_per_node = 4, .partition = "gpu", .account = "proj", .rendezvous_port = 29400}));
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string& s = job->sbatch;
  for (const char* line :
       {"#SBATCH --nodes=2\n", "#SBATCH --gpus-per-node=4\n", "#SBATCH --partition=gpu\n",
        "#SBATCH --account=proj\n", "#SBATCH --cpus-per-task=4\n", "RESTART_LEARNERS=1\n",
        "RENDEZVOUS_PORT=29400\n"}) {
    EXPECT_THAT(s, HasSubstr(line));
  }
  // GPUs by the node: none for the coordinator, one a rank, one an actor.
  EXPECT_THAT(s, HasSubstr("--nodelist=\"$(nodes0 0 1)\" --gpus-per-node=0 \\\n  \"$BPO\" "
                           "coordinator"));
  EXPECT_THAT(s, HasSubstr("--nodelist=\"$(nodes0 0 1)\" --gpus-per-node=4 --ntasks-per-node=4"));
  EXPECT_THAT(s, HasSubstr("keep actor-2 --exact --nodes=1 --ntasks=1 "
                           "--cpus-per-task=$CPUS_PER_TASK --nodelist=\"$(nodes0 1 1)\" "
                           "--gpus-per-node=1"));
  EXPECT_THAT(s, HasSubstr("keep annotator-0 --exact --nodes=1 --ntasks=1 "
                           "--cpus-per-task=$CPUS_PER_TASK --nodelist=\"$(nodes0 1 1)\" "
                           "--gpus-per-node=1"));
  ExpectBashParses(s);
}

TEST(SlurmScriptTest, HetjobScriptHasTwoComponentsAndStartsStepsInEach) {
  absl::StatusOr<SlurmJob> job = RenderSlurmJob(Options(
      "model: {device: cuda, policy: /p}\nannotation: {kind: rule}\n", {.hetjob = true,
                                                                        .gpus_per_node = 4,
                                                                        .partition = "gpu",
                                                                        .cpu_partition = "cpu",
                                                                        .time = "1-00:00:00"}));
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string& s = job->sbatch;
  EXPECT_THAT(s,
              HasSubstr("#SBATCH --time=1-00:00:00\n#SBATCH --partition=cpu\n#SBATCH --nodes=1\n"
                        "#SBATCH --ntasks-per-node=2\n#SBATCH --cpus-per-task=4\n#SBATCH hetjob\n"
                        "#SBATCH --time=1-00:00:00\n#SBATCH --partition=gpu\n#SBATCH --nodes=1\n"
                        "#SBATCH --ntasks-per-node=4\n#SBATCH --cpus-per-task=4\n"
                        "#SBATCH --gpus-per-node=4\n"));
  EXPECT_THAT(s, HasSubstr("mapfile -t NODES1 < <(scontrol show hostnames "
                           "\"$SLURM_JOB_NODELIST_HET_GROUP_1\")"));
  EXPECT_THAT(s, HasSubstr("HOSTS=$(nodes0 0 ${#NODES0[@]}),$(nodes1 0 ${#NODES1[@]})\n"));
  EXPECT_THAT(s, HasSubstr("keep coordinator --het-group=0 --exact"));
  EXPECT_THAT(s, HasSubstr("--het-group=1 --exact --nodes=1 --ntasks=2"));
  EXPECT_THAT(s, HasSubstr("scontrol show node -o \"${NODES1[0]}\""));
  EXPECT_THAT(s, HasSubstr("keep actor-1 --het-group=1 --exact"));
  EXPECT_THAT(s, HasSubstr("keep annotator-0 --het-group=0 --exact"));
  ExpectBashParses(s);
}

TEST(SlurmScriptTest, PlaintextStaysOnLoopbackWithoutCertificates) {
  absl::StatusOr<SlurmJob> job = RenderSlurmJob(
      Options("security: {plaintext: true}\nendpoints: {coordinator: 127.0.0.1:1, snapshots: "
              "127.0.0.1:2, metrics: 127.0.0.1:3}\n"));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->config.endpoints().metrics(), "127.0.0.1:0");
  EXPECT_THAT(job->sbatch, HasSubstr("LISTEN_HOST=127.0.0.1\n"));
  EXPECT_THAT(job->sbatch, Not(HasSubstr("certs")));
  ExpectBashParses(job->sbatch);
}

TEST(SlurmScriptTest, HumanAnnotationServiceIsStartedWithItsRatersFile) {
  absl::StatusOr<SlurmJob> job = RenderSlurmJob(
      Options("annotation: {kind: human}\n", {.human_raters = "/shared/raters.txt"}));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->sbatch, HasSubstr("RATERS=/shared/raters.txt\n"));
  EXPECT_THAT(job->sbatch, HasSubstr("HUMAN=1\n"));
  EXPECT_THAT(job->sbatch, HasSubstr("ANNOTATORS=0\n"));
  EXPECT_THAT(job->sbatch, HasSubstr("\"$BPO\" annotator --kind=human --http=\"$LISTEN_HOST:0\" "
                                     "--raters=\"$RATERS\" --config=\"$BPO_CONFIG\" --name=human"));
  ExpectBashParses(job->sbatch);
}

TEST(SlurmScriptTest, ConfigsItCannotCarryAreRefusedNamingTheKey) {
  auto refused = [](const SlurmRenderOptions& o, const std::string& key) {
    absl::StatusOr<SlurmJob> job = RenderSlurmJob(o);
    ASSERT_FALSE(job.ok()) << key;
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(job.status().message()), ::testing::StartsWith(key + ":"))
        << job.status();
  };
  refused(Options("security: {cert: /c/actor.pem}\n"), "security.cert");
  refused(Options("output_dir: /my runs\n"), "output_dir");
  refused(Options("output_dir: /runs%x\n"), "output_dir");
  SlurmRenderOptions bad_out = Options("");
  bad_out.out_dir = "/o'ut";
  refused(bad_out, "--out");
  refused(Options("model: {device: cuda, policy: /p}\n"), "--gpus_per_node");
}

}  // namespace
}  // namespace bpo::launch
