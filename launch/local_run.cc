#include "launch/local_run.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/certs.h"
#include "common/config.h"
#include "common/status_macros.h"
#include "common/transport.h"
#include "coordinator/client.h"
#include "launch/metrics_targets.h"
#include "launch/progress.h"
#include "launch/run_completion.h"
#include "launch/supervisor.h"

namespace bpo::launch {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitInterrupted = 130;

struct RunLayout {
  std::string run_dir;
  // This launch's own rendezvous directory: <run dir>/rendezvous/<launch>,
  // so no attempt of this launch meets files of an earlier one.
  std::string rendezvous_dir;
  std::string local_config;  // the config every child reads
  // Every child listens on port 0 and writes what it bound to
  // <addresses_dir>/<name>.json (common/address_file.h); the coordinator's
  // endpoint is its file.
  std::string addresses_dir;
  std::string coordinator_endpoint;  // file:<addresses_dir>/coordinator.json
};

// Creates the run directory, points the config's endpoints at port 0 and the
// coordinator's address file, and writes it as local-config.yaml.
absl::StatusOr<RunLayout> PrepareRunDir(bpo::v1::RunConfig& config, const std::string& source) {
  RunLayout layout;
  BPO_ASSIGN_OR_RETURN(layout.run_dir, RunPath(config));
  std::error_code ec;
  for (const char* sub : {"logs", "pids"}) {
    std::filesystem::create_directories(absl::StrCat(layout.run_dir, "/", sub), ec);
  }
  if (ec) return absl::PermissionDeniedError(absl::StrCat(layout.run_dir, ": ", ec.message()));
  // A fresh rendezvous namespace for this launch; earlier launches' files
  // are stale (their processes are gone) and removed.
  const std::string rendezvous = absl::StrCat(layout.run_dir, "/rendezvous");
  std::filesystem::remove_all(rendezvous, ec);
  layout.rendezvous_dir = absl::StrCat(
      rendezvous, "/", absl::FormatTime("%Y%m%dT%H%M%S", absl::Now(), absl::UTCTimeZone()), "-",
      getpid());
  std::filesystem::create_directories(layout.rendezvous_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(layout.rendezvous_dir, ": ", ec.message()));
  }
  // No port is chosen here: each child binds port 0 and says what it got.
  // Addresses of an earlier launch are stale.
  layout.addresses_dir = absl::StrCat(layout.run_dir, "/addresses");
  std::filesystem::remove_all(layout.addresses_dir, ec);
  std::filesystem::create_directories(layout.addresses_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(layout.addresses_dir, ": ", ec.message()));
  }
  layout.coordinator_endpoint = absl::StrCat("file:", layout.addresses_dir, "/coordinator.json");
  config.mutable_endpoints()->set_coordinator(layout.coordinator_endpoint);
  config.mutable_endpoints()->set_snapshots("127.0.0.1:0");
  config.mutable_endpoints()->set_metrics("127.0.0.1:0");
  layout.local_config = absl::StrCat(layout.run_dir, "/local-config.yaml");
  std::ofstream out(layout.local_config);
  out << "# Written by `bpo local` from " << source << "; the config every process reads.\n"
      << FormatRunConfigYaml(config);
  if (!out) {
    return absl::PermissionDeniedError(absl::StrCat(layout.local_config, ": cannot write"));
  }
  return layout;
}

std::string AddressFile(const RunLayout& layout, const std::string& child) {
  return absl::StrCat(layout.addresses_dir, "/", child, ".json");
}

}  // namespace

absl::StatusOr<GpuAssignment> AssignGpus(int learners, int actors, int annotators, int gpus) {
  if (gpus < 1) return absl::FailedPreconditionError("model.device is cuda but no GPU is visible");
  if (learners > gpus) {
    return absl::FailedPreconditionError(
        absl::StrCat("learner.world_size = ", learners, " but this host has ", gpus,
                     " GPU(s): each learner rank needs a GPU of its own"));
  }
  GpuAssignment a;
  for (int r = 0; r < learners; ++r) a.learners.push_back(r);
  const int first_free = learners < gpus ? learners : 0;
  const int free = gpus - first_free;
  int next = 0;
  for (int i = 0; i < actors; ++i) a.actors.push_back(first_free + next++ % free);
  for (int i = 0; i < annotators; ++i) a.annotators.push_back(first_free + next++ % free);
  return a;
}

namespace {

// One child per process of the run, in start order. With `gpus`, each child
// gets its GPU in BPO_CUDA_DEVICE (model/policy.h, ResolveProcessDevice).
std::vector<ChildSpec> MakeChildren(const bpo::v1::RunConfig& config, const RunLayout& layout,
                                    const std::string& program,
                                    const std::optional<GpuAssignment>& gpus) {
  const auto& launch = config.launch();
  std::vector<ChildSpec> children;
  auto add = [&](std::string name, const char* command, bool learner,
                 std::vector<std::string> extra) {
    ChildSpec c;
    c.name = std::move(name);
    c.program = program;
    c.argv = {"bpo", command, "--config=" + layout.local_config, "--metrics_address=127.0.0.1:0",
              "--address_file=" + AddressFile(layout, c.name)};
    const bool coordinator = std::string(command) == "coordinator";
    if (!coordinator) c.argv.push_back("--name=" + c.name);
    for (auto& e : extra) c.argv.push_back(std::move(e));
    c.log_path = absl::StrCat(layout.run_dir, "/logs/", c.name, ".log");
    c.pid_path = absl::StrCat(layout.run_dir, "/pids/", c.name, ".pid");
    const auto policy = learner ? launch.on_learner_failure() : launch.on_worker_failure();
    c.on_failure = policy == bpo::v1::LaunchConfig::STOP ? OnFailure::kStop : OnFailure::kRestart;
    c.policy_name = learner ? "launch.on_learner_failure" : "launch.on_worker_failure";
    c.gang = c.required = learner;
    if (learner) {
      c.gang_arg = [dir = layout.rendezvous_dir](int attempt) {
        return absl::StrCat("--rendezvous=file:", dir, "/attempt-", attempt);
      };
    }
    // The coordinator serves until stopped, and stops last.
    c.may_finish = !coordinator;
    c.stop_stage = coordinator ? 1 : 0;
    children.push_back(std::move(c));
  };
  auto gpu = [&](const std::vector<int>& of, int i) {
    if (gpus) children.back().env.push_back(absl::StrCat("BPO_CUDA_DEVICE=", of[i]));
  };
  add("coordinator", "coordinator", false, {"--linger_seconds=3600"});
  for (int r = 0; r < config.learner().world_size(); ++r) {
    add(absl::StrCat("learner-", r), "learner", true, {absl::StrCat("--rank=", r)});
    if (gpus) gpu(gpus->learners, r);
  }
  for (int i = 0; i < launch.actors(); ++i) {
    add(absl::StrCat("actor-", i), "actor", false, {});
    if (gpus) gpu(gpus->actors, i);
  }
  for (int i = 0; i < launch.annotators(); ++i) {
    add(absl::StrCat("annotator-", i), "annotator", false, {});
    if (gpus) gpu(gpus->annotators, i);
  }
  return children;
}

// Keeps <run dir>/prometheus-targets.json (Prometheus file discovery) equal
// to the /metrics addresses the children published, and says when one
// appears or moves (a restarted child has a new port).
class TargetsReporter {
 public:
  TargetsReporter(std::vector<std::string> children, const RunLayout& layout,
                  const std::string& run_id, std::string scheme, bool tty)
      : targets_({.processes = std::move(children),
                  .addresses_dir = layout.addresses_dir,
                  .path = absl::StrCat(layout.run_dir, "/prometheus-targets.json"),
                  .run_id = run_id}),
        scheme_(std::move(scheme)),
        tty_(tty) {}

  void Refresh() {
    std::vector<ScrapeTarget> changed;
    const absl::Status written = targets_.Refresh(&changed);
    for (const ScrapeTarget& t : changed) {
      std::cout << (tty_ ? "\n" : "") << "  " << t.process << " metrics " << scheme_ << "://"
                << t.address << "/metrics\n"
                << std::flush;
    }
    if (!written.ok()) std::cout << "bpo local: " << written << "\n";
  }

 private:
  MetricsTargets targets_;
  const std::string scheme_;
  const bool tty_;
};

// Polls the children and reports progress until the run ends; stops every
// child and returns the exit code.
int Watch(Supervisor& supervisor, ProgressReporter& progress, TargetsReporter& targets,
          const LocalRunOptions& options, const RunLayout& layout, bool tty) {
  auto stop_all = [&](int code, const std::string& why) {
    if (tty) std::cout << "\n";
    if (!why.empty()) std::cout << why << "\n";
    supervisor.Stop();
    std::cout << std::flush;
    return code;
  };
  while (true) {
    if (options.stop_requested && options.stop_requested()) {
      return stop_all(kExitInterrupted, "bpo local: interrupted; stopping every process");
    }
    const Supervisor::PollResult poll = supervisor.Poll();
    switch (poll.state) {
      case Supervisor::State::kRunning:
        break;
      case Supervisor::State::kFailed: {
        // A process that died once the run was over (e.g. a learner rank
        // killed after the last commit and the export) fails nothing.
        absl::StatusOr<RunCompletion> completion = ReadRunCompletion(options.config);
        if (completion.ok() && completion->finished()) {
          return stop_all(kExitOk, absl::StrCat("bpo local: ", poll.message,
                                                "; the run had already finished: every step "
                                                "committed and the adapter exported, in ",
                                                layout.run_dir, "/adapter"));
        }
        return stop_all(kExitFailure, absl::StrCat("bpo local: ", poll.message,
                                                   ". Run `bpo local` again with the same "
                                                   "config to resume."));
      }
      case Supervisor::State::kStartFailed:
        return stop_all(kExitFailure, poll.message);
      case Supervisor::State::kDone: {
        const bpo::v1::RunStatus& last = progress.Refresh();
        std::cout << (tty ? "\n" : "")
                  << absl::StrFormat(
                         "bpo local: run %s done: %d/%d steps, %d pairs consumed (%d dropped), "
                         "%.0f s\n",
                         options.config.run_id(), last.step(), last.total_steps(),
                         last.pairs_consumed(), last.pairs_dropped(),
                         absl::ToDoubleSeconds(absl::Now() - progress.started()))
                  << "  adapter: " << layout.run_dir << "/adapter\n  logs:    " << layout.run_dir
                  << "/logs\n";
        return stop_all(kExitOk, "");
      }
    }
    targets.Refresh();
    progress.MaybeReport();
    absl::SleepFor(absl::Milliseconds(200));
  }
}

}  // namespace

absl::StatusOr<TransportSecurity> PrepareLocalTransport(const bpo::v1::RunConfig& config) {
  if (config.security().plaintext()) return TransportSecurity::Plaintext();
  BPO_ASSIGN_OR_RETURN(const std::string dir, CertificateDir(config));
  std::vector<Identity> identities = {{Role::kCoordinator, "coordinator"},
                                      {Role::kObserver, "launcher"},
                                      {Role::kObserver, "prometheus"}};
  for (int r = 0; r < config.learner().world_size(); ++r) {
    identities.push_back({Role::kLearner, absl::StrCat("learner-", r)});
  }
  for (int i = 0; i < config.launch().actors(); ++i) {
    identities.push_back({Role::kActor, absl::StrCat("actor-", i)});
  }
  for (int i = 0; i < config.launch().annotators(); ++i) {
    identities.push_back({Role::kAnnotator, absl::StrCat("annotator-", i)});
  }
  BPO_RETURN_IF_ERROR(EnsureCertificates(dir, config.run_id(), identities));
  return LoadTransport(config, "launcher");
}

absl::StatusOr<int> RunLocal(LocalRunOptions options) {
  bpo::v1::RunConfig& config = options.config;
  // A finished run is not started again: say so, and succeed.
  BPO_ASSIGN_OR_RETURN(const RunCompletion completion, ReadRunCompletion(config));
  if (completion.steps_committed >= completion.total_steps && !completion.finished()) {
    std::cout << "bpo local: every step of run " << config.run_id()
              << " is committed but the final adapter was not exported (the learner stopped "
                 "first); starting the run again to export it\n";
  }
  if (completion.finished()) {
    BPO_ASSIGN_OR_RETURN(const std::string run_dir, RunPath(config));
    std::cout << "bpo local: run " << config.run_id() << " is already finished ("
              << completion.steps_committed << "/" << config.schedule().total_steps()
              << " steps committed); adapter: " << run_dir << "/adapter. Remove " << run_dir
              << " to run it again.\n";
    return kExitOk;
  }
  BPO_ASSIGN_OR_RETURN(const RunLayout layout, PrepareRunDir(config, options.config_source));
  BPO_ASSIGN_OR_RETURN(const TransportSecurity transport, PrepareLocalTransport(config));
  std::optional<GpuAssignment> gpus;
  if (config.model().device() == "cuda") {
    BPO_ASSIGN_OR_RETURN(gpus, AssignGpus(config.learner().world_size(), config.launch().actors(),
                                          config.launch().annotators(), options.cuda_devices));
  }
  std::vector<ChildSpec> children = MakeChildren(config, layout, options.program, gpus);
  std::vector<std::string> names;
  for (const ChildSpec& c : children) names.push_back(c.name);
  const bool tty = isatty(STDOUT_FILENO);
  TargetsReporter targets(names, layout, config.run_id(), transport.plaintext ? "http" : "https",
                          tty);

  SupervisorOptions so;
  so.max_restarts = config.launch().max_restarts();
  so.gang_restart_note = "restarting all learner ranks from the last checkpoint";
  for (ChildSpec& spec : children) {
    if (spec.name == "coordinator") {
      // Everyone else needs it: wait until it serves.
      // The supervisor probes it while the coordinator lives (60 s at most).
      spec.ready = [&layout, &transport]() -> absl::Status {
        coordinator::ClientOptions co;
        co.address = layout.coordinator_endpoint;
        co.transport = transport;
        co.retry_for = absl::Seconds(1);
        return coordinator::CoordinatorClient::Connect(co).status();
      };
    }
    so.children.push_back(std::move(spec));
  }
  so.on_started = [](const ChildSpec& c, pid_t pid) {
    std::cout << "  started " << c.name << " (pid " << pid << ")\n";
  };
  so.on_restart = [tty](const std::string& notice) {
    std::cout << (tty ? "\n" : "") << "bpo local: " << notice << "\n" << std::flush;
  };
  Supervisor supervisor(std::move(so));

  std::cout << "bpo local: run " << config.run_id() << " in " << layout.run_dir << " ("
            << config.learner().world_size() << " learner rank(s), " << config.launch().actors()
            << " actor(s), " << config.launch().annotators() << " annotator(s); logs in "
            << layout.run_dir << "/logs; "
            << (transport.plaintext ? "plaintext on loopback"
                                    : "mutual TLS, certificates in " + *CertificateDir(config))
            << ")\n";
  BPO_RETURN_IF_ERROR(supervisor.Start());
  std::cout << std::flush;

  coordinator::ClientOptions co;
  co.address = layout.coordinator_endpoint;
  co.rpc_deadline = absl::Seconds(5);
  co.retry_for = absl::Seconds(1);
  co.transport = transport;
  BPO_ASSIGN_OR_RETURN(std::unique_ptr<coordinator::CoordinatorClient> status_client,
                       coordinator::CoordinatorClient::Connect(co));
  ProgressReporter progress(status_client.get(), &std::cout, tty);
  targets.Refresh();
  return Watch(supervisor, progress, targets, options, layout, tty);
}

}  // namespace bpo::launch
