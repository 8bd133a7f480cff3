// bpo local: a whole run on one machine. Starts the coordinator, the learner
// ranks, the actors and the annotators as separate processes on loopback
// ports, shows the run's progress, restarts or stops on a child's death as
// configured (launch.*), and stops everything cleanly on Ctrl-C.
//
// Run directory <output_dir>/<run_id>/: local-config.yaml (the config every
// child reads, ports filled in), logs/<process>.log, pids/<process>.pid,
// prometheus-targets.json (file_sd targets of every /metrics endpoint), and
// what the processes write themselves (coordinator.db, checkpoints, ...).
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "cli/worker.h"
#include "common/config.h"
#include "coordinator/client.h"
#include "nlohmann/json.hpp"

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;

int Fail(const absl::Status& s) {
  std::cerr << "bpo local: " << s.message() << "\n";
  return kExitFailure;
}

// A loopback port that is free now and outside the kernel's ephemeral range,
// so that no outgoing connection of an earlier child can take it before the
// child that is told to listen on it starts.
int FreePort() {
  int lo = 32768, hi = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> lo >> hi;
  static std::mt19937 rng(static_cast<uint32_t>(getpid()));
  // Below the ephemeral range when there is room, else above it.
  const bool below = lo > 12000;
  std::uniform_int_distribution<int> pick(below ? 10000 : hi + 1, below ? lo - 1 : 65535);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = pick(rng);
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (ok) return port;
  }
  return 0;
}

enum class Role { kCoordinator, kLearner, kActor, kAnnotator };

struct Child {
  std::string name;
  Role role;
  std::vector<std::string> argv;
  std::string metrics;  // host:port
  pid_t pid = -1;
  int restarts = 0;
  bool finished = false;  // exited 0 after the run was done
};

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return "stopped";
}

class Launcher {
 public:
  Launcher(std::string run_dir, std::string config_path) : run_dir_(std::move(run_dir)), config_path_(std::move(config_path)) {}

  absl::Status Start(Child* c, const std::string& attempt_suffix = "") {
    std::vector<std::string> argv = c->argv;
    if (!attempt_suffix.empty()) argv.push_back(attempt_suffix);
    const std::string log = LogPath(*c);
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      setpgid(0, 0);  // Ctrl-C reaches the launcher only; it stops the children in order
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv("/proc/self/exe", args.data());
      _exit(127);
    }
    c->pid = pid;
    std::ofstream(absl::StrCat(run_dir_, "/pids/", c->name, ".pid")) << pid << "\n";
    return absl::OkStatus();
  }

  std::string LogPath(const Child& c) const { return absl::StrCat(run_dir_, "/logs/", c.name, ".log"); }

  // SIGTERM, then SIGKILL after `grace`; reaps.
  static void Stop(std::vector<Child*> children, absl::Duration grace) {
    for (Child* c : children) {
      if (c->pid > 0) kill(c->pid, SIGTERM);
    }
    const absl::Time until = absl::Now() + grace;
    for (Child* c : children) {
      while (c->pid > 0) {
        int status = 0;
        const pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid || r < 0) {
          c->pid = -1;
          break;
        }
        if (absl::Now() > until) {
          kill(c->pid, SIGKILL);
          waitpid(c->pid, &status, 0);
          c->pid = -1;
          break;
        }
        absl::SleepFor(absl::Milliseconds(50));
      }
    }
  }

 private:
  std::string run_dir_;
  std::string config_path_;
};

std::string Bar(int64_t done, int64_t total, int width) {
  const int filled = total > 0 ? static_cast<int>(width * done / total) : 0;
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "]");
}

int RunLocal(const std::vector<std::string>&) {
  InstallStopHandlers();
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<RunConfigFile> file = path.empty() ? DefaultRunConfig() : LoadRunConfig(path);
  if (!file.ok()) return Fail(file.status());
  bpo::v1::RunConfig config = file->config;
  const std::string run_dir = absl::StrCat(config.output_dir(), "/", config.run_id());
  std::error_code ec;
  for (const char* sub : {"logs", "pids"}) fs::create_directories(absl::StrCat(run_dir, "/", sub), ec);
  if (ec) return Fail(absl::PermissionDeniedError(absl::StrCat(run_dir, ": ", ec.message())));

  // Loopback ports for this launch.
  const std::string coordinator_address = absl::StrCat("127.0.0.1:", FreePort());
  config.mutable_endpoints()->set_coordinator(coordinator_address);
  config.mutable_endpoints()->set_snapshots(absl::StrCat("127.0.0.1:", FreePort()));
  config.mutable_endpoints()->set_metrics("127.0.0.1:0");
  const std::string local_config = absl::StrCat(run_dir, "/local-config.yaml");
  {
    std::ofstream out(local_config);
    out << "# Written by `bpo local` from " << file->source << "; the config every process reads.\n"
        << FormatRunConfigYaml(config);
    if (!out) return Fail(absl::PermissionDeniedError(absl::StrCat(local_config, ": cannot write")));
  }

  std::vector<Child> children;
  auto add = [&](std::string name, Role role, std::vector<std::string> extra) {
    Child c;
    c.name = std::move(name);
    c.role = role;
    c.metrics = absl::StrCat("127.0.0.1:", FreePort());
    const char* cmd = role == Role::kCoordinator ? "coordinator"
                      : role == Role::kLearner   ? "learner"
                      : role == Role::kActor     ? "actor"
                                                 : "annotator";
    c.argv = {"bpo", cmd, "--config=" + local_config, "--metrics_address=" + c.metrics};
    if (role != Role::kCoordinator) c.argv.push_back("--name=" + c.name);
    for (auto& e : extra) c.argv.push_back(std::move(e));
    children.push_back(std::move(c));
  };
  add("coordinator", Role::kCoordinator, {"--linger_seconds=3600"});
  const int world = config.learner().world_size();
  for (int r = 0; r < world; ++r) add(absl::StrCat("learner-", r), Role::kLearner, {absl::StrCat("--rank=", r)});
  for (int i = 0; i < config.launch().actors(); ++i) add(absl::StrCat("actor-", i), Role::kActor, {});
  for (int i = 0; i < config.launch().annotators(); ++i) add(absl::StrCat("annotator-", i), Role::kAnnotator, {});
  {
    nlohmann::json targets = nlohmann::json::array();
    for (const Child& c : children) {
      targets.push_back({{"targets", {c.metrics}},
                         {"labels", {{"run_id", config.run_id()}, {"process", c.name}}}});
    }
    std::ofstream(absl::StrCat(run_dir, "/prometheus-targets.json")) << targets.dump(2) << "\n";
  }

  Launcher launcher(run_dir, local_config);
  int learner_attempt = 0;
  auto learner_suffix = [&]() {
    return absl::StrCat("--rendezvous=file:", run_dir, "/rendezvous/attempt-", learner_attempt);
  };
  std::cout << "bpo local: run " << config.run_id() << " in " << run_dir << " (" << world
            << " learner rank(s), " << config.launch().actors() << " actor(s), "
            << config.launch().annotators() << " annotator(s); logs in " << run_dir << "/logs)\n";
  for (Child& c : children) {
    if (auto s = launcher.Start(&c, c.role == Role::kLearner ? learner_suffix() : ""); !s.ok()) return Fail(s);
    std::cout << "  started " << c.name << " (pid " << c.pid << "), metrics http://" << c.metrics
              << "/metrics\n";
    if (c.role == Role::kCoordinator) {
      // Everyone else needs it: wait until it serves.
      coordinator::ClientOptions co;
      co.address = coordinator_address;
      co.retry_for = absl::Seconds(60);
      if (auto client = coordinator::CoordinatorClient::Connect(co); !client.ok()) {
        std::vector<Child*> all;
        for (Child& x : children) all.push_back(&x);
        Launcher::Stop(all, absl::Seconds(5));
        return Fail(absl::UnavailableError(absl::StrCat("the coordinator did not start; see ",
                                                        launcher.LogPath(c))));
      }
    }
  }
  std::cout << std::flush;

  coordinator::ClientOptions co;
  co.address = coordinator_address;
  co.rpc_deadline = absl::Seconds(5);
  co.retry_for = absl::Seconds(1);
  auto status_client = coordinator::CoordinatorClient::Connect(co);
  if (!status_client.ok()) return Fail(status_client.status());
  const bool tty = isatty(STDOUT_FILENO);
  const absl::Time t0 = absl::Now();
  int64_t first_step = -1;
  absl::Time last_print = absl::InfinitePast();
  std::vector<Child*> all;
  for (Child& c : children) all.push_back(&c);
  auto stop_all = [&](int code, const std::string& why) {
    if (tty) std::cout << "\n";
    if (!why.empty()) std::cout << why << "\n";
    // Workers first, the coordinator last (its store is always consistent).
    std::vector<Child*> workers, coordinator;
    for (Child* c : all) (c->role == Role::kCoordinator ? coordinator : workers).push_back(c);
    Launcher::Stop(workers, absl::Seconds(10));
    Launcher::Stop(coordinator, absl::Seconds(10));
    std::cout << std::flush;
    return code;
  };

  bpo::v1::RunStatus last;
  while (true) {
    if (StopRequested()) return stop_all(130, "bpo local: interrupted; stopping every process");
    // Children that exited.
    bool learners_done = true;
    for (Child& c : children) {
      if (c.pid <= 0) {
        if (c.role == Role::kLearner && !c.finished) learners_done = false;
        continue;
      }
      int status = 0;
      const pid_t r = waitpid(c.pid, &status, WNOHANG);
      if (r != c.pid) {
        if (c.role == Role::kLearner) learners_done = false;
        continue;
      }
      c.pid = -1;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && c.role != Role::kCoordinator) {
        c.finished = true;
        continue;
      }
      if (c.role == Role::kLearner) learners_done = false;
      const std::string what = absl::StrCat(c.name, " died (", DescribeExit(status), "); log: ",
                                            launcher.LogPath(c));
      const bool learner = c.role == Role::kLearner;
      const auto policy = learner ? config.launch().on_learner_failure() : config.launch().on_worker_failure();
      if (policy == bpo::v1::LaunchConfig::STOP || c.restarts >= config.launch().max_restarts()) {
        return stop_all(kExitFailure,
                        absl::StrCat("bpo local: ", what, "; stopping the run",
                                     policy == bpo::v1::LaunchConfig::STOP
                                         ? " (launch." + std::string(learner ? "on_learner_failure" : "on_worker_failure") + ": stop)"
                                         : absl::StrCat(" after ", c.restarts, " restarts"),
                                     ". Run `bpo local` again with the same config to resume."));
      }
      if (tty) std::cout << "\n";
      if (learner) {
        // Every rank restarts from the last complete checkpoint together.
        std::vector<Child*> ranks;
        for (Child& x : children) {
          if (x.role == Role::kLearner) ranks.push_back(&x);
        }
        Launcher::Stop(ranks, absl::Seconds(10));
        ++learner_attempt;
        std::cout << "bpo local: " << what << "; restarting all learner ranks from the last checkpoint\n";
        for (Child* x : ranks) {
          x->finished = false;
          ++x->restarts;
          if (auto s = launcher.Start(x, learner_suffix()); !s.ok()) return stop_all(kExitFailure, std::string(s.message()));
        }
      } else {
        ++c.restarts;
        std::cout << "bpo local: " << what << "; restarting it (" << c.restarts << "/"
                  << config.launch().max_restarts() << ")\n";
        if (auto s = launcher.Start(&c); !s.ok()) return stop_all(kExitFailure, std::string(s.message()));
      }
      std::cout << std::flush;
    }
    if (learners_done) {
      auto s = (*status_client)->Status();
      if (s.ok()) last = *s;
      std::cout << (tty ? "\n" : "")
                << absl::StrFormat("bpo local: run %s done: %d/%d steps, %d pairs consumed (%d dropped), %.0f s\n",
                                   config.run_id(), last.step(), last.total_steps(), last.pairs_consumed(),
                                   last.pairs_dropped(), absl::ToDoubleSeconds(absl::Now() - t0))
                << "  adapter: " << run_dir << "/adapter\n  logs:    " << run_dir << "/logs\n";
      return stop_all(kExitOk, "");
    }
    // Progress.
    if (absl::Now() - last_print >= (tty ? absl::Seconds(1) : absl::Seconds(5))) {
      auto s = (*status_client)->Status();
      if (s.ok()) {
        last = *s;
        if (first_step < 0) first_step = last.step();
        const double elapsed = absl::ToDoubleSeconds(absl::Now() - t0);
        const int64_t done_steps = last.step() - first_step;
        const double eta = done_steps > 0 ? elapsed / done_steps * (last.total_steps() - last.step()) : -1;
        auto loss = last.last_step_metrics().find("loss");
        std::string line = absl::StrFormat(
            "phase %d/%d step %d/%d %s | pairs %d queued %d sampled %d annotated %d consumed /%d | loss %s | %.1f pairs/s | ETA %s",
            last.phase() + 1, last.phases(), last.step(), last.total_steps(),
            Bar(last.step(), last.total_steps(), 20), last.pairs_queued() + last.pairs_leased(),
            last.pairs_sampled(), last.pairs_annotated() + last.pairs_batched(), last.pairs_consumed(),
            last.pairs_total(),
            loss == last.last_step_metrics().end() ? "-" : absl::StrFormat("%.4f", loss->second),
            elapsed > 0 ? last.pairs_consumed() / elapsed : 0.0,
            eta < 0 ? "-" : absl::StrFormat("%.0fs", eta));
        std::cout << (tty ? "\r" : "") << line << (tty ? "\033[K" : "\n") << std::flush;
      }
      last_print = absl::Now();
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
}

}  // namespace

const Command& LocalCommand() {
  static const Command kCommand{
      "local", "Run everything on this machine: coordinator, actors, annotators, learner ranks.",
      "bpo local --config FILE", __FILE__, 0, 0, &RunLocal, {}, {"config"}};
  return kCommand;
}

}  // namespace bpo::cli
