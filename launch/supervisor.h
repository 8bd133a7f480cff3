// Supervising a set of child processes: start them in order, reap them,
// restart or stop per policy, and stop them all in stages. What `bpo local`
// (launch/local_run.h) runs its coordinator, learner ranks, actors and
// annotators with; nothing here knows what the children are.
//
// Not thread-safe: one thread drives a Supervisor (Start, then Poll until it
// says the run is over, then Stop). The children are this process's own:
// they are reaped with waitpid on their pids only.
#ifndef BPO_LAUNCH_SUPERVISOR_H_
#define BPO_LAUNCH_SUPERVISOR_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace bpo::launch {

enum class OnFailure {
  kStop,     // the run stops
  kRestart,  // the child starts again (a gang child: the whole gang)
};

struct ChildSpec {
  std::string name;  // unique; in messages
  std::string program;
  std::vector<std::string> argv;  // argv[0] is the name the child sees
  // Appended to argv at every start of a gang child, from the gang's attempt
  // number (0 at first, +1 at every gang restart).
  std::function<std::string(int attempt)> gang_arg;
  std::string log_path;          // stdout and stderr, appended to; must be set
  std::string pid_path;          // when set, the pid is written there at every start
  std::vector<std::string> env;  // "NAME=value" added to its environment
  OnFailure on_failure = OnFailure::kRestart;
  std::string policy_name;  // the setting behind on_failure, named when it stops the run
  // Gang children restart together: when one fails, every gang child is
  // stopped and all start again (the learner ranks, from their checkpoint).
  bool gang = false;
  // The run is done when every required child has exited 0.
  bool required = false;
  // An exit 0 means the child is done (it is not started again). When false
  // every exit is a failure (a server that should run until stopped).
  bool may_finish = true;
  // Stop() stops stage 0 first, then stage 1, ... (a stage is reaped before
  // the next one is signalled).
  int stop_stage = 0;
  // Probed after the first start (in Start()) until it returns OK: UNAVAILABLE
  // means "not yet" (it is probed again, while the child is alive, for up to
  // SupervisorOptions::ready_timeout); any other error fails Start() at once.
  // Each probe should take about a second at most.
  std::function<absl::Status()> ready;
};

struct SupervisorOptions {
  std::vector<ChildSpec> children;  // started in this order
  int max_restarts = 3;             // per child; one more failure stops the run
  // A failed child (or gang) starts again after a back-off that doubles at
  // each restart of it, from restart_backoff up to restart_backoff_max; Poll
  // never blocks on it. Zero: at once.
  absl::Duration restart_backoff = absl::Seconds(1);
  absl::Duration restart_backoff_max = absl::Seconds(30);
  absl::Duration stop_grace = absl::Seconds(10);  // SIGTERM, then SIGKILL
  absl::Duration start_failure_grace = absl::Seconds(5);
  // How long a child's `ready` may stay UNAVAILABLE during Start().
  absl::Duration ready_timeout = absl::Seconds(60);
  // Said in a gang restart's notice: "<name> died (...); log: ...; <note>".
  std::string gang_restart_note = "restarting every gang child";
  // Called with each restart's notice just before the child (or gang) starts
  // again, and with each child's pid when Start() has started it.
  std::function<void(const std::string& notice)> on_restart;
  std::function<void(const ChildSpec& child, pid_t pid)> on_started;
};

// "exit status 3", "killed by signal 9 (Killed)" or "stopped", from a
// waitpid status.
std::string DescribeExit(int wait_status);

class Supervisor {
 public:
  enum class State {
    kRunning,      // nothing to do but poll again
    kDone,         // every required child exited 0
    kFailed,       // a child failed and its policy (or max_restarts) stops the run
    kStartFailed,  // a restart could not start a child
  };
  struct PollResult {
    State state = State::kRunning;
    // kFailed: "<name> died (<exit>); log: <path>; stopping the run (<policy>:
    // stop)" or "... after <n> restarts"; kStartFailed: the start error.
    std::string message;
  };

  explicit Supervisor(SupervisorOptions options);
  // Stops whatever still runs (Stop()).
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts every child in order, calling on_started and then probing its
  // `ready`. A child that dies while it is probed fails Start() at once
  // (FAILED_PRECONDITION with how it ended and the last lines of its log);
  // one not ready within ready_timeout fails it with DEADLINE_EXCEEDED. On a
  // failure, stops every child started so far (all at once,
  // start_failure_grace) and returns that error.
  absl::Status Start();

  // Reaps the children that exited (without blocking), restarts them per
  // their policy (once their back-off has passed) and says whether the run
  // goes on. Once it returns anything
  // but kRunning, the caller calls Stop().
  PollResult Poll();

  // Stops every running child, stage by stage: SIGTERM to the stage, then
  // SIGKILL to whoever has not exited stop_grace later; reaps them all.
  void Stop();

  // The running pid of child `name`, or -1 (not running, waiting out its
  // restart back-off, or no such child).
  pid_t pid(std::string_view name) const;

 private:
  struct Child {
    ChildSpec spec;
    pid_t pid = -1;
    int restarts = 0;
    bool finished = false;  // exited 0 and may_finish
    // Failed, and to start again at restart_at (the back-off).
    bool pending_restart = false;
    absl::Time restart_at;
  };

  absl::Status Launch(Child& child);
  // Probes child.spec.ready until it is OK, the child dies or ready_timeout.
  absl::Status AwaitReady(Child& child);
  // A child exited with `wait_status` and is not done: restart it (or its
  // gang) or say the run stops.
  PollResult OnChildFailed(Child& child, int wait_status);
  static void StopTogether(const std::vector<Child*>& children, absl::Duration grace);

  SupervisorOptions options_;
  std::vector<Child> children_;
  int gang_attempt_ = 0;
};

}  // namespace bpo::launch

#endif  // BPO_LAUNCH_SUPERVISOR_H_
