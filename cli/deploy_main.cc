// bpo deploy slurm | status | watch: a run on a Slurm cluster. `slurm`
// renders the batch script from the run config (launch/slurm_script.h);
// `status` and `watch` are what the batch script runs: whether the run is
// finished, and its Prometheus targets and progress while it runs.
#include <filesystem>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "cli/worker.h"
#include "common/config.h"
#include "launch/run_completion.h"
#include "launch/run_watch.h"
#include "launch/slurm_script.h"

ABSL_FLAG(bool, hetjob, false,
          "A heterogeneous job: the coordinator and the workers without a GPU in one "
          "component, the learner ranks and GPU workers on GPU nodes in another.");
ABSL_FLAG(std::string, partition, "", "Slurm partition (of the GPU nodes with --hetjob).");
ABSL_FLAG(std::string, cpu_partition, "",
          "--hetjob: the partition of the coordinator's component; empty: --partition.");
ABSL_FLAG(std::string, account, "", "Slurm account to charge.");
ABSL_FLAG(std::string, time, "", "Time limit (HH:MM:SS or D-HH:MM:SS); empty: the partition's.");
ABSL_FLAG(int32_t, gpus_per_node, 0, "GPUs of each GPU node; required when model.device is cuda.");
ABSL_FLAG(int32_t, nodes, 0,
          "Nodes of the allocation (the GPU component with --hetjob); 0: as many as the run "
          "needs.");
ABSL_FLAG(int32_t, cpus_per_task, 0, "CPUs of each process; 0: 4 with GPUs, 1 without.");
ABSL_FLAG(std::string, human_raters, "",
          "annotation.kind human: the raters file of the human-annotation service.");
ABSL_FLAG(int32_t, rendezvous_port, 0,
          "Port where the learner ranks meet on the first learner node; 0: 20000 + job id % "
          "10000.");
ABSL_FLAG(std::string, bpo, "",
          "The bpo binary on the nodes (the script's BPO variable overrides it at "
          "submission); empty: this one.");
ABSL_FLAG(std::string, target_labels, "",
          "Labels added to every Prometheus target, as name=value,name=value.");
ABSL_FLAG(double, report_seconds, 30, "Seconds between progress lines.");

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;

// The status exit code of `bpo deploy status` for a run not finished yet.
constexpr int kExitNotFinished = 3;

absl::StatusOr<RunConfigFile> ConfigFromFlag(bool check_files) {
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) return absl::InvalidArgumentError("--config names no run config");
  return LoadRunConfig(path, {.check_files = check_files});
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  return fs::absolute(path, ec).lexically_normal().string();
}

int RunDeploySlurm(const std::vector<std::string>&) {
  absl::StatusOr<RunConfigFile> file = ConfigFromFlag(true);
  if (!file.ok()) return Fail("deploy slurm", file.status());
  launch::SlurmRenderOptions o;
  o.config = file->config;
  o.config_source = Absolute(file->source);
  absl::StatusOr<std::string> run_dir = RunPath(o.config);
  if (!run_dir.ok()) return Fail("deploy slurm", run_dir.status());
  o.out_dir =
      Absolute(absl::GetFlag(FLAGS_out).empty() ? *run_dir + "/slurm" : absl::GetFlag(FLAGS_out));
  o.bpo = absl::GetFlag(FLAGS_bpo);
  if (o.bpo.empty()) {
    std::error_code ec;
    o.bpo = fs::read_symlink("/proc/self/exe", ec).string();
  }
  o.bpo = Absolute(o.bpo);
  o.slurm.hetjob = absl::GetFlag(FLAGS_hetjob);
  o.slurm.partition = absl::GetFlag(FLAGS_partition);
  o.slurm.cpu_partition = absl::GetFlag(FLAGS_cpu_partition);
  o.slurm.account = absl::GetFlag(FLAGS_account);
  o.slurm.time = absl::GetFlag(FLAGS_time);
  o.slurm.gpus_per_node = absl::GetFlag(FLAGS_gpus_per_node);
  o.slurm.nodes = absl::GetFlag(FLAGS_nodes);
  o.slurm.cpus_per_task = absl::GetFlag(FLAGS_cpus_per_task);
  o.slurm.rendezvous_port = absl::GetFlag(FLAGS_rendezvous_port);
  if (!absl::GetFlag(FLAGS_human_raters).empty()) {
    o.slurm.human_raters = Absolute(absl::GetFlag(FLAGS_human_raters));
  }
  absl::StatusOr<launch::SlurmJob> job = launch::RenderSlurmJob(o);
  if (!job.ok()) return Fail("deploy slurm", job.status());
  if (absl::Status s = launch::WriteSlurmJob(*job, o.out_dir); !s.ok()) {
    return Fail("deploy slurm", s);
  }
  std::cout << "run " << o.config.run_id() << " as a Slurm "
            << (o.slurm.hetjob ? "heterogeneous job" : "job") << ":\n"
            << launch::DescribeSlurmPlan(job->plan) << "wrote " << o.out_dir << "/bpo.sbatch and "
            << o.out_dir << "/run.yaml; run directory " << job->run_dir << "\n";
  if (o.config.learner().checkpoint_every() == 0) {
    std::cout << "note: learner.checkpoint_every is 0: a requeued job replays every step\n";
  }
  std::cout << "submit with: sbatch " << o.out_dir << "/bpo.sbatch\n";
  return kExitOk;
}

int RunDeployStatus(const std::vector<std::string>&) {
  absl::StatusOr<RunConfigFile> file = ConfigFromFlag(false);
  if (!file.ok()) return Fail("deploy status", file.status());
  absl::StatusOr<launch::RunCompletion> c = launch::ReadRunCompletion(file->config);
  if (!c.ok()) return Fail("deploy status", c.status());
  std::cout << "run " << file->config.run_id() << ": " << c->steps_committed << "/"
            << c->total_steps << " steps committed, adapter "
            << (c->adapter_exported ? "exported" : "not exported") << ": "
            << (c->finished() ? "finished" : "not finished") << "\n";
  return c->finished() ? kExitOk : kExitNotFinished;
}

int RunDeployWatch(const std::vector<std::string>&) {
  InstallStopHandlers();
  absl::StatusOr<RunConfigFile> file = ConfigFromFlag(false);
  if (!file.ok()) return Fail("deploy watch", file.status());
  launch::WatchOptions o;
  o.config = file->config;
  for (absl::string_view pair :
       absl::StrSplit(absl::GetFlag(FLAGS_target_labels), ',', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return Fail("deploy watch", absl::InvalidArgumentError(absl::StrCat(
                                      "--target_labels: '", pair, "' is not name=value")));
    }
    o.target_labels[kv[0]] = kv[1];
  }
  o.report_every = absl::Seconds(absl::GetFlag(FLAGS_report_seconds));
  o.stop_requested = &StopRequested;
  absl::StatusOr<int> code = launch::WatchRun(o);
  return code.ok() ? *code : Fail("deploy watch", code.status());
}

}  // namespace

const Command& DeploySlurmCommand() {
  static const Command kCommand{
      "deploy slurm",
      "Render a Slurm batch script (and its run.yaml) that runs a config on a cluster.",
      "bpo deploy slurm --config FILE [--out DIR] [--hetjob] [--partition P] [--account A] "
      "[--time HH:MM:SS] [--gpus_per_node N] [--nodes N]",
      __FILE__,
      0,
      0,
      &RunDeploySlurm,
      {"hetjob", "partition", "cpu_partition", "account", "time", "gpus_per_node", "nodes",
       "cpus_per_task", "human_raters", "rendezvous_port", "bpo"},
      {"config", "out"}};
  return kCommand;
}

const Command& DeployStatusCommand() {
  static const Command kCommand{
      "deploy status",
      "Say whether a run is finished (exit 0) or not yet (exit 3), from its run directory.",
      "bpo deploy status --config FILE",
      SharedFlagsFile(),  // no flags of its own: --config only
      0,
      0,
      &RunDeployStatus,
      {"config"}};
  return kCommand;
}

const Command& DeployWatchCommand() {
  static const Command kCommand{
      "deploy watch",
      "Keep a running run's prometheus-targets.json current and print its progress.",
      "bpo deploy watch --config FILE [--target_labels k=v,...] [--report_seconds S]",
      __FILE__,
      0,
      0,
      &RunDeployWatch,
      {"target_labels", "report_seconds"},
      {"config"}};
  return kCommand;
}

}  // namespace bpo::cli
