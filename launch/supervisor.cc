#include "launch/supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/subprocess.h"

namespace bpo::launch {

std::string DescribeExit(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exit status ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wait_status), " (",
                        strsignal(WTERMSIG(wait_status)), ")");
  }
  return "stopped";
}

Supervisor::Supervisor(SupervisorOptions options) : options_(std::move(options)) {
  for (ChildSpec& spec : options_.children) children_.push_back(Child{std::move(spec)});
  options_.children.clear();
}

Supervisor::~Supervisor() { Stop(); }

absl::Status Supervisor::Launch(Child& child) {
  std::vector<std::string> argv = child.spec.argv;
  if (child.spec.gang && child.spec.gang_arg) argv.push_back(child.spec.gang_arg(gang_attempt_));
  SpawnOptions spawn;
  spawn.log_path = child.spec.log_path;
  spawn.append_log = true;
  // Ctrl-C reaches the supervising process only; it stops the children in order.
  spawn.new_process_group = true;
  spawn.parent_death_signal = SIGTERM;
  spawn.env = child.spec.env;
  const absl::StatusOr<pid_t> pid = SpawnProcess(child.spec.program, std::move(argv), spawn);
  if (!pid.ok()) return pid.status();
  child.pid = *pid;
  if (!child.spec.pid_path.empty()) std::ofstream(child.spec.pid_path) << *pid << "\n";
  return absl::OkStatus();
}

absl::Status Supervisor::Start() {
  std::vector<Child*> started;
  for (Child& child : children_) {
    absl::Status s = Launch(child);
    if (s.ok()) {
      started.push_back(&child);
      if (options_.on_started) options_.on_started(child.spec, child.pid);
      if (child.spec.ready) s = AwaitReady(child);
    }
    if (!s.ok()) {
      StopTogether(started, options_.start_failure_grace);
      return s;
    }
  }
  return absl::OkStatus();
}

namespace {

// The last `max_lines` lines of a log file (at most 4 KiB of it).
std::string LogTail(const std::string& path, int max_lines = 20) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "(no log)";
  const std::streamoff size = in.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - 4096);
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t cut = text.size();
  for (int n = 0; n <= max_lines && cut != std::string::npos && cut > 0; ++n) {
    cut = text.rfind('\n', cut - 1);
  }
  if (cut != std::string::npos && cut > 0) text = text.substr(cut + 1);
  return text.empty() ? "(empty log)" : text;
}

}  // namespace

absl::Status Supervisor::AwaitReady(Child& child) {
  const absl::Time deadline = absl::Now() + options_.ready_timeout;
  while (true) {
    int status = 0;
    if (waitpid(child.pid, &status, WNOHANG) == child.pid) {
      child.pid = -1;
      return absl::FailedPreconditionError(
          absl::StrCat(child.spec.name, " died during start-up (", DescribeExit(status),
                       "); the end of ", child.spec.log_path, ":\n", LogTail(child.spec.log_path)));
    }
    const absl::Status probe = child.spec.ready();
    if (probe.ok() || probe.code() != absl::StatusCode::kUnavailable) return probe;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          child.spec.name, " was not ready within ", absl::FormatDuration(options_.ready_timeout),
          " (", probe.message(), "); log: ", child.spec.log_path));
    }
    absl::SleepFor(absl::Milliseconds(20));  // between probes; each probe waits itself
  }
}

Supervisor::PollResult Supervisor::Poll() {
  // Reap every child that ended since the last poll before acting on any.
  struct Death {
    Child* child;
    int status;
  };
  std::vector<Death> deaths;
  for (Child& child : children_) {
    if (child.pid <= 0) continue;
    int status = 0;
    if (waitpid(child.pid, &status, WNOHANG) != child.pid) continue;
    child.pid = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && child.spec.may_finish) {
      child.finished = true;
      continue;
    }
    deaths.push_back({&child, status});
  }
  // Causes before consequences: a child killed by a signal is reported
  // before one that exited with an error in the same interval (a learner
  // rank exits 1 when the peer it all-reduces with is killed under it).
  std::stable_sort(deaths.begin(), deaths.end(), [](const Death& a, const Death& b) {
    return WIFSIGNALED(a.status) && !WIFSIGNALED(b.status);
  });
  bool gang_restarted = false;
  for (const Death& d : deaths) {
    if (d.child->spec.gang && gang_restarted) continue;  // restarted with its gang
    PollResult result = OnChildFailed(*d.child, d.status);
    if (result.state != State::kRunning) return result;
    gang_restarted = gang_restarted || d.child->spec.gang;
  }
  // Restarts whose back-off has passed.
  const absl::Time now = absl::Now();
  for (Child& child : children_) {
    if (!child.pending_restart || child.restart_at > now) continue;
    child.pending_restart = false;
    if (absl::Status s = Launch(child); !s.ok()) {
      return {State::kStartFailed, std::string(s.message())};
    }
  }
  for (const Child& child : children_) {
    if (child.spec.required && !child.finished) return {};
  }
  return {State::kDone, ""};
}

Supervisor::PollResult Supervisor::OnChildFailed(Child& child, int wait_status) {
  const std::string what = absl::StrCat(child.spec.name, " died (", DescribeExit(wait_status),
                                        "); log: ", child.spec.log_path);
  const bool policy_stops = child.spec.on_failure == OnFailure::kStop;
  if (policy_stops || child.restarts >= options_.max_restarts) {
    return {State::kFailed,
            absl::StrCat(what, "; stopping the run",
                         policy_stops ? absl::StrCat(" (", child.spec.policy_name, ": stop)")
                                      : absl::StrCat(" after ", child.restarts, " restarts"))};
  }
  std::vector<Child*> restart = {&child};
  std::string notice;
  if (child.spec.gang) {
    restart.clear();
    for (Child& other : children_) {
      if (other.spec.gang) restart.push_back(&other);
    }
    StopTogether(restart, options_.stop_grace);
    for (Child* c : restart) c->pending_restart = false;  // stopped, not yet restarted
    ++gang_attempt_;
    notice = absl::StrCat(what, "; ", options_.gang_restart_note);
  } else {
    notice = absl::StrCat(what, "; restarting it (", child.restarts + 1, "/", options_.max_restarts,
                          ")");
  }
  // Back off: restart_backoff, doubled at each restart of this child.
  absl::Duration backoff = options_.restart_backoff;
  for (int i = 0; i < child.restarts && backoff < options_.restart_backoff_max; ++i) backoff *= 2;
  backoff = std::min(backoff, options_.restart_backoff_max);
  if (backoff > absl::ZeroDuration()) {
    absl::StrAppend(&notice, " in ", absl::FormatDuration(backoff));
  }
  if (options_.on_restart) options_.on_restart(notice);
  const absl::Time at = absl::Now() + backoff;
  for (Child* c : restart) {
    c->finished = false;
    ++c->restarts;
    c->pending_restart = true;
    c->restart_at = at;
  }
  return {};
}

void Supervisor::Stop() {
  std::set<int> stages;
  for (const Child& child : children_) stages.insert(child.spec.stop_stage);
  for (int stage : stages) {
    std::vector<Child*> batch;
    for (Child& child : children_) {
      if (child.spec.stop_stage == stage) batch.push_back(&child);
    }
    StopTogether(batch, options_.stop_grace);
  }
}

void Supervisor::StopTogether(const std::vector<Child*>& children, absl::Duration grace) {
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

pid_t Supervisor::pid(std::string_view name) const {
  for (const Child& child : children_) {
    if (child.spec.name == name) return child.pid;
  }
  return -1;
}

}  // namespace bpo::launch
