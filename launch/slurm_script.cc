#include "launch/slurm_script.h"

#include <sys/stat.h>

#include <filesystem>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/transport.h"

namespace bpo::launch {
namespace {

using Kind = SlurmStep::Kind;

// Paths go into #SBATCH lines, which Slurm does not unquote, and into the
// script unquoted: only characters that need no quoting, and no '%' (a Slurm
// file name pattern).
absl::Status CheckPath(const std::string& key, const std::string& path) {
  for (char c : path) {
    if (!absl::ascii_isalnum(c) && std::string("/._-+,:@=").find(c) == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ": '", path, "' has '", std::string(1, c),
                       "'; the batch script takes paths of letters, digits and /._-+,:@= only"));
    }
  }
  return absl::OkStatus();
}

// The script's own lines for `step`: an srun of it, in the background.
struct StepLines {
  const SlurmPlan& plan;
  bool het;

  // "$(nodes0 2 1)": the names of `count` nodes of `component` from `first`.
  static std::string Nodes(int component, int first, int count) {
    return absl::StrCat("\"$(nodes", component, " ", first, " ", count, ")\"");
  }

  std::string SrunOptions(const SlurmStep& s) const {
    std::string o;
    if (het) absl::StrAppend(&o, "--het-group=", s.component, " ");
    absl::StrAppend(
        &o, "--exact --nodes=", s.nodes, " --ntasks=", s.tasks,
        " --cpus-per-task=$CPUS_PER_TASK --nodelist=", Nodes(s.component, s.node, s.nodes));
    // One GPU a task, the same number on each of the step's nodes; a step
    // that names none would take every GPU of its nodes. (Slurm 22.05 gives
    // a step with --gpus-per-task or --gpus=0 every GPU, and refuses
    // --gres=none.)
    if (s.gpu) {
      absl::StrAppend(&o, " --gpus-per-node=", s.tasks_per_node);
    } else if (plan.components[s.component].gpus_per_node > 0) {
      absl::StrAppend(&o, " --gpus-per-node=0");
    }
    return o;
  }

  std::string Worker(const SlurmStep& s) const {
    std::string command;
    switch (s.kind) {
      case Kind::kActor:
        command = "actor";
        break;
      case Kind::kAnnotator:
        command = "annotator";
        break;
      case Kind::kHuman:
        command = "annotator --kind=human --http=\"$LISTEN_HOST:0\" --raters=\"$RATERS\"";
        break;
      default:
        return "";
    }
    return absl::StrCat("keep ", s.name, " ", SrunOptions(s), " \\\n  \"$BPO\" ", command,
                        " --config=\"$BPO_CONFIG\" --name=", s.name, " --address_file=\"$BPO_ADDR/",
                        s.name, ".json\"\n");
  }
};

const SlurmStep& StepOf(const SlurmPlan& plan, Kind kind) {
  for (const SlurmStep& s : plan.steps) {
    if (s.kind == kind) return s;
  }
  return plan.steps.front();  // every plan has a coordinator and learners
}

std::string Directives(const SlurmRenderOptions& o, const SlurmPlan& plan,
                       const std::string& run_dir) {
  std::string d;
  auto line = [&](const std::string& option) { absl::StrAppend(&d, "#SBATCH ", option, "\n"); };
  line(absl::StrCat("--job-name=bpo-", o.config.run_id()));
  line(absl::StrCat("--output=", run_dir, "/logs/slurm-%j.out"));
  line("--open-mode=append");
  line("--requeue");
  for (size_t i = 0; i < plan.components.size(); ++i) {
    const SlurmComponent& c = plan.components[i];
    if (i > 0) line("hetjob");
    if (!o.slurm.time.empty()) line("--time=" + o.slurm.time);
    if (!o.slurm.account.empty()) line("--account=" + o.slurm.account);
    if (!c.partition.empty()) line("--partition=" + c.partition);
    line(absl::StrCat("--nodes=", c.nodes));
    line(absl::StrCat("--ntasks-per-node=", c.tasks_per_node));
    line(absl::StrCat("--cpus-per-task=", plan.cpus_per_task));
    if (c.gpus_per_node > 0) line(absl::StrCat("--gpus-per-node=", c.gpus_per_node));
  }
  return d;
}

// The part of the script that does not depend on the layout: helpers,
// the finished check, certificates' function, supervision loops.
constexpr char kPrologue[] = R"sh(
set -o pipefail

say() { echo "[$(date -u +%Y-%m-%dT%H:%M:%SZ)] bpo.sbatch: $*"; }

mkdir -p "$LOGS" "$BPO_ADDR"
say "job $SLURM_JOB_ID, start $((${SLURM_RESTART_COUNT:-0} + 1)), on $SLURM_JOB_NODELIST"
if "$BPO" deploy status --config="$BPO_CONFIG"; then
  say "the run is finished already; nothing to start"
  exit 0
fi
# Addresses published in an earlier allocation are stale.
rm -f "$BPO_ADDR"/*.json
)sh";

constexpr char kCertificates[] = R"sh(
# Certificates, kept in the run directory: a requeued job re-uses them.
if [[ ! -f $CERTS/ca.pem ]]; then
  "$BPO" certs init --config="$BPO_CONFIG" --dir="$CERTS" || exit 1
fi
issue() {
  [[ -f $CERTS/$2.pem && -f $CERTS/$2.key ]] && return 0
  "$BPO" certs issue --config="$BPO_CONFIG" --dir="$CERTS" --role="$1" --cert_name="$2" \
    --hosts="$HOSTS" >/dev/null || exit 1
}
issue coordinator coordinator
for ((i = 0; i < LEARNERS; i++)); do issue learner "learner-$i"; done
for ((i = 0; i < ACTORS; i++)); do issue actor "actor-$i"; done
for ((i = 0; i < ANNOTATORS; i++)); do issue annotator "annotator-$i"; done
((HUMAN)) && issue annotator human
issue observer launcher
issue observer prometheus
)sh";

constexpr char kSupervision[] = R"sh(
# keep NAME SRUN-ARGS...: runs a step in the background and starts it again
# when it fails (launch.on_worker_failure), at most MAX_RESTARTS times, after
# a back-off doubling from 1 s to 30 s. Its output: $LOGS/NAME.log. A TERM
# stops it: srun, given SIGINT (--quit-on-interrupt), passes it on to the
# process, which stops cleanly (srun would answer SIGTERM with SIGKILL).
WORKERS=()
NAMES=()
keep() {
  local name=$1
  shift
  (
    child=
    trap '[[ -n $child ]] && kill -INT "$child" 2>/dev/null; wait; exit 0' TERM INT
    restarts=0
    backoff=1
    while true; do
      srun --quiet --job-name="$name" --output="$LOGS/$name.log" --open-mode=append \
        --quit-on-interrupt "$@" &
      child=$!
      wait "$child"
      rc=$?
      child=
      ((rc == 0)) && exit 0
      if ((!RESTART_WORKERS || restarts >= MAX_RESTARTS)); then
        say "$name exited with status $rc; not starting it again (launch.on_worker_failure, launch.max_restarts); log: $LOGS/$name.log"
        exit "$rc"
      fi
      restarts=$((restarts + 1))
      say "$name exited with status $rc; starting it again in ${backoff}s (restart $restarts of $MAX_RESTARTS)"
      sleep "$backoff" &
      wait $!
      backoff=$((backoff * 2 > 30 ? 30 : backoff * 2))
    done
  ) &
}

# stop: the workers and the learner ranks first, then the coordinator (its
# store is consistent at any time), then the watcher.
stop() {
  local group
  for group in "$LEARNER_LOOP ${WORKERS[*]}" "$COORDINATOR" "$WATCH"; do
    [[ -z ${group// /} ]] && continue
    kill -TERM $group 2>/dev/null
    wait $group 2>/dev/null
  done
}
LEARNER_LOOP=
COORDINATOR=
WATCH=
trap 'say "signalled (preempted, requeued or cancelled): stopping every process"; stop; exit 143' TERM INT
)sh";

constexpr char kCoordinatorWait[] = R"sh(COORDINATOR=$!
for ((i = 0; i < 3000; i++)); do
  [[ -s $BPO_ADDR/coordinator.json ]] && break
  if ! kill -0 $COORDINATOR 2>/dev/null; then
    say "the coordinator failed; log: $LOGS/coordinator.log"
    exit 1
  fi
  sleep 0.2
done
if [[ ! -s $BPO_ADDR/coordinator.json ]]; then
  say "the coordinator did not serve within 10 minutes; log: $LOGS/coordinator.log"
  stop
  exit 1
fi
say "coordinator at $(sed -n 's/.*"grpc": *"\([^"]*\)".*/\1/p' "$BPO_ADDR/coordinator.json")"
"$BPO" deploy watch --config="$BPO_CONFIG" --target_labels="slurm_job_id=$SLURM_JOB_ID" &
WATCH=$!
)sh";

// The learner ranks: one srun step of every rank, started again (all of
// them, from the last checkpoint) per launch.on_learner_failure.
constexpr char kLearnerLoop[] = R"sh(
# The learner ranks, all in one step: a rank that dies ends the step
# (--kill-on-bad-exit). The loop ends when the run is finished, or when the
# ranks failed and launch.on_learner_failure says stop (or MAX_RESTARTS).
learners() (
  child=
  trap '[[ -n $child ]] && kill -INT "$child" 2>/dev/null; wait; exit 0' TERM INT
  attempt=0
  backoff=1
  while true; do
    export BPO_RENDEZVOUS="tcp:$RENDEZVOUS_HOST:$((RENDEZVOUS_PORT + attempt))"
    srun --quiet --job-name=learner --output="$LOGS/learner-%t.log" --open-mode=append \
      --quit-on-interrupt --kill-on-bad-exit=1 --distribution=block LEARNER_SRUN_OPTIONS \
      bash -c 'exec "$BPO" learner --config="$BPO_CONFIG" --rank="$SLURM_PROCID" --rendezvous="$BPO_RENDEZVOUS" --address_file="$BPO_ADDR/learner-$SLURM_PROCID.json"' &
    child=$!
    wait "$child"
    rc=$?
    child=
    "$BPO" deploy status --config="$BPO_CONFIG" >/dev/null && exit 0
    if ((!RESTART_LEARNERS || attempt >= MAX_RESTARTS)); then
      say "the learner ranks exited (status $rc) before the run finished; logs: $LOGS/learner-*.log"
      exit 1
    fi
    attempt=$((attempt + 1))
    say "the learner ranks exited (status $rc); starting all of them again from the last checkpoint in ${backoff}s (restart $attempt of $MAX_RESTARTS)"
    sleep "$backoff" &
    wait $!
    backoff=$((backoff * 2 > 30 ? 30 : backoff * 2))
  done
)
learners &
LEARNER_LOOP=$!
)sh";

constexpr char kEpilogue[] = R"sh(
# Until the learner ranks end; a worker that failed for good stops the run.
code=0
while kill -0 $LEARNER_LOOP 2>/dev/null; do
  for i in "${!WORKERS[@]}"; do
    kill -0 "${WORKERS[$i]}" 2>/dev/null && continue
    wait "${WORKERS[$i]}"
    rc=$?
    if ((rc != 0)); then
      say "${NAMES[$i]} failed for good; stopping the run"
      code=1
    fi
    unset "WORKERS[$i]"
  done
  if [[ -n $COORDINATOR ]] && ! kill -0 $COORDINATOR 2>/dev/null; then
    wait $COORDINATOR
    rc=$?
    COORDINATOR=
    if ((rc != 0)); then
      say "the coordinator failed for good; stopping the run"
      code=1
    fi
  fi
  ((code != 0)) && break
  sleep 2 &
  wait $!
done
if ((code == 0)); then
  wait $LEARNER_LOOP
  code=$?
fi
stop
if ((code == 0)); then
  say "run finished: every step committed; adapter in $BPO_RUN_DIR/adapter"
else
  say "run stopped before it finished; submit this script again to resume it"
fi
exit $code
)sh";

}  // namespace

absl::StatusOr<bpo::v1::RunConfig> SlurmRunConfig(const bpo::v1::RunConfig& config) {
  bpo::v1::RunConfig out = config;
  BPO_ASSIGN_OR_RETURN(const std::string run_dir, RunPath(config));
  const std::string host = config.security().plaintext() ? "127.0.0.1" : "0.0.0.0";
  out.mutable_endpoints()->set_coordinator(
      absl::StrCat("file:", run_dir, "/addresses/coordinator.json"));
  out.mutable_endpoints()->set_snapshots(host + ":0");
  out.mutable_endpoints()->set_metrics(host + ":0");
  return out;
}

absl::StatusOr<SlurmJob> RenderSlurmJob(const SlurmRenderOptions& o) {
  SlurmJob job;
  const bpo::v1::RunConfig& c = o.config;
  for (const auto& [key, value] :
       {std::pair<const char*, std::string>{"security.ca", c.security().ca()},
        {"security.cert", c.security().cert()},
        {"security.key", c.security().key()}}) {
    if (!value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          key,
          ": the processes of a Slurm job each read their own <security.dir>/<name>.pem and "
          ".key; leave security.ca, .cert and .key unset"));
    }
  }
  BPO_ASSIGN_OR_RETURN(job.plan, PlanSlurmJob(c, o.slurm));
  BPO_ASSIGN_OR_RETURN(job.config, SlurmRunConfig(c));
  BPO_ASSIGN_OR_RETURN(job.run_dir, RunPath(c));
  BPO_ASSIGN_OR_RETURN(const std::string certs, CertificateDir(c));
  BPO_RETURN_IF_ERROR(CheckPath("output_dir", job.run_dir));
  BPO_RETURN_IF_ERROR(CheckPath("security.dir", certs));
  BPO_RETURN_IF_ERROR(CheckPath("--out", o.out_dir));
  BPO_RETURN_IF_ERROR(CheckPath("--bpo", o.bpo));
  if (!o.slurm.human_raters.empty()) {
    BPO_RETURN_IF_ERROR(CheckPath("--human_raters", o.slurm.human_raters));
  }
  const std::string config_path = absl::StrCat(o.out_dir, "/run.yaml");
  job.config_yaml =
      absl::StrCat("# Written by `bpo deploy slurm` from ", o.config_source,
                   ": the config every process of the Slurm job reads (", o.out_dir,
                   "/bpo.sbatch).\n# Endpoints: the coordinator publishes its address in the run "
                   "directory; every server binds port 0.\n",
                   FormatRunConfigYaml(job.config));
  // The effective config must load as it will on the nodes.
  BPO_RETURN_IF_ERROR(
      ParseRunConfig(job.config_yaml, config_path, o.out_dir, {.check_files = false}).status());

  const SlurmPlan& plan = job.plan;
  const bool het = plan.components.size() > 1;
  const bool tls = !c.security().plaintext();
  const bool human = !o.slurm.human_raters.empty();
  const auto& launch = c.launch();
  std::string s = "#!/bin/bash\n";
  absl::StrAppend(&s, "# Run ", c.run_id(), " on Slurm: rendered by `bpo deploy slurm` from\n# ",
                  o.config_source,
                  ".\n# Render it again rather than edit it: which processes run where, their "
                  "names\n# and paths come from the run config; ",
                  config_path, " is the\n# effective config every process reads.\n#\n#   sbatch ",
                  o.out_dir, "/bpo.sbatch\n#\n");
  for (absl::string_view line : absl::StrSplit(DescribeSlurmPlan(plan), '\n', absl::SkipEmpty())) {
    absl::StrAppend(&s, "# ", line, "\n");
  }
  absl::StrAppend(&s,
                  "#\n# Requeue-safe: a requeued or resubmitted job resumes from the "
                  "coordinator's\n# store and the learner checkpoints in ",
                  job.run_dir, "\n# and re-uses its certificates; a finished run exits at once.\n",
                  Directives(o, plan, job.run_dir), "\n");
  absl::StrAppend(
      &s, "# Every node reads these paths (a shared file system). BPO may be set at submission.\n",
      "export BPO=${BPO:-", o.bpo, "}\n", "export BPO_CONFIG=", config_path, "\n",
      "export BPO_RUN_DIR=", job.run_dir, "\n", "export BPO_ADDR=$BPO_RUN_DIR/addresses\n",
      "LOGS=$BPO_RUN_DIR/logs\n", tls ? absl::StrCat("CERTS=", certs, "\n") : "",
      human ? absl::StrCat("RATERS=", o.slurm.human_raters, "\n") : "",
      "# From the run config: learner.world_size, launch.actors, launch.annotators,\n",
      "# launch.max_restarts, launch.on_worker_failure, launch.on_learner_failure.\n",
      "LEARNERS=", c.learner().world_size(), "\nACTORS=", launch.actors(),
      "\nANNOTATORS=", human ? 0 : launch.annotators(), "\nHUMAN=", human ? 1 : 0,
      "\nMAX_RESTARTS=", launch.max_restarts(),
      "\nRESTART_WORKERS=", launch.on_worker_failure() == bpo::v1::LaunchConfig::RESTART ? 1 : 0,
      "\nRESTART_LEARNERS=", launch.on_learner_failure() == bpo::v1::LaunchConfig::RESTART ? 1 : 0,
      "\nCPUS_PER_TASK=", plan.cpus_per_task, "\nLISTEN_HOST=", tls ? "0.0.0.0" : "127.0.0.1", "\n",
      kPrologue);

  // The allocation's nodes, by component.
  absl::StrAppend(&s,
                  "\n# The allocation's nodes; `nodesC FIRST COUNT` names COUNT of "
                  "component C's from FIRST.\n");
  std::vector<std::string> hosts;
  for (size_t i = 0; i < plan.components.size(); ++i) {
    absl::StrAppend(&s, "mapfile -t NODES", i, " < <(scontrol show hostnames \"$SLURM_JOB_NODELIST",
                    het ? absl::StrCat("_HET_GROUP_", i) : "", "\")\n", "nodes", i,
                    "() {\n  local IFS=,\n  echo \"${NODES", i, "[*]:$1:$2}\"\n}\n");
    hosts.push_back(absl::StrCat("$(nodes", i, " 0 ${#NODES", i, "[@]})"));
  }
  if (tls) {
    absl::StrAppend(&s, "HOSTS=", absl::StrJoin(hosts, ","), "\n", kCertificates);
  }
  absl::StrAppend(&s, kSupervision);

  const StepLines lines{plan, het};
  const SlurmStep& coordinator = StepOf(plan, Kind::kCoordinator);
  absl::StrAppend(&s, "\n# The coordinator: its store is in the run directory.\n", "keep ",
                  coordinator.name, " ", lines.SrunOptions(coordinator), " \\\n",
                  "  \"$BPO\" coordinator --config=\"$BPO_CONFIG\" --listen=\"$LISTEN_HOST:0\" "
                  "--address_file=\"$BPO_ADDR/coordinator.json\" --linger_seconds=3600\n",
                  kCoordinatorWait);

  const SlurmStep& learners = StepOf(plan, Kind::kLearners);
  std::string learner_options = lines.SrunOptions(learners);
  absl::StrAppend(&learner_options, " --ntasks-per-node=", learners.tasks_per_node);
  absl::StrAppend(
      &s, "\n# Learner ranks meet at the first learner node.",
      learners.gpu ? " Every rank of a node sees the step's\n# GPUs there and takes the one of "
                     "its SLURM_LOCALID (model/policy.h).\n"
                   : "\n",
      "RENDEZVOUS_HOST=$(scontrol show node -o \"${NODES", learners.component, "[", learners.node,
      "]}\" | tr ' ' '\\n' | sed -n 's/^NodeAddr=//p')\n", "RENDEZVOUS_PORT=",
      o.slurm.rendezvous_port > 0 ? absl::StrCat(o.slurm.rendezvous_port)
                                  : "$((20000 + SLURM_JOB_ID % 10000))",
      "\n", absl::StrReplaceAll(kLearnerLoop, {{"LEARNER_SRUN_OPTIONS", learner_options}}));

  absl::StrAppend(&s, "\n# Actors and annotators", human ? " (the human-annotation service)" : "",
                  ": each its own step.\n");
  for (const SlurmStep& step : plan.steps) {
    const std::string worker = lines.Worker(step);
    if (worker.empty()) continue;
    absl::StrAppend(&s, worker, "WORKERS+=($!)\nNAMES+=(", step.name, ")\n");
  }
  absl::StrAppend(&s, kEpilogue);
  job.sbatch = std::move(s);
  return job;
}

absl::Status WriteSlurmJob(const SlurmJob& job, const std::string& out_dir) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(out_dir, ": ", ec.message()));
  std::filesystem::create_directories(job.run_dir + "/logs", ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(job.run_dir, "/logs: ", ec.message()));
  BPO_RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/run.yaml", job.config_yaml));
  const std::string script = out_dir + "/bpo.sbatch";
  BPO_RETURN_IF_ERROR(WriteFileAtomically(script, job.sbatch));
  if (chmod(script.c_str(), 0755) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(script, ": cannot make it executable"));
  }
  return absl::OkStatus();
}

}  // namespace bpo::launch
