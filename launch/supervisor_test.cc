// The supervisor with real short-lived processes: /bin/sh scripts that record
// their starts and stops (and the argument they got) in an events file of the
// test's own temporary directory. Waits are on conditions (a line in the
// events file, a Poll result), each with a deadline.
#include "launch/supervisor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/subprocess.h"

namespace bpo::launch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kDeadline = absl::Seconds(30);

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "bpo_supervisor_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    events_ = dir_ + "/events";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A child running `body` under /bin/sh, with `rec WORDS` appending a line
  // to the events file; $0 is its name, $1 its gang argument.
  ChildSpec Child(const std::string& name, const std::string& body) {
    ChildSpec c;
    c.name = name;
    c.program = "/bin/sh";
    c.argv = {"sh", "-c", absl::StrCat("rec() { echo \"$*\" >> ", events_, "; }; ", body), name};
    c.log_path = absl::StrCat(dir_, "/", name, ".log");
    c.pid_path = absl::StrCat(dir_, "/", name, ".pid");
    return c;
  }
  // Runs until SIGTERM, recording "start NAME ARG" once its trap is set and
  // "stop NAME" (after `stop_delay`) when it gets SIGTERM.
  ChildSpec Server(const std::string& name, const std::string& stop_delay = "") {
    return Child(name, absl::StrCat("trap '", stop_delay, " rec stop $0; kill $!; exit 0' TERM; ",
                                    "rec start $0 $1; sleep 1000 & wait"));
  }

  std::vector<std::string> Events() const {
    std::vector<std::string> lines;
    std::ifstream in(events_);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  int Count(const std::string& line) const {
    const auto events = Events();
    return static_cast<int>(std::count(events.begin(), events.end(), line));
  }
  // Index of the first event equal to `line`, or -1.
  int IndexOf(const std::string& line) const {
    const auto events = Events();
    const auto it = std::find(events.begin(), events.end(), line);
    return it == events.end() ? -1 : static_cast<int>(it - events.begin());
  }
  // Waits until the events file holds `line` (at least `times` times).
  bool WaitForEvent(const std::string& line, int times = 1) const {
    const absl::Time deadline = absl::Now() + kDeadline;
    while (Count(line) < times) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }
  // Polls until the run is over.
  static Supervisor::PollResult PollUntilOver(Supervisor& supervisor) {
    const absl::Time deadline = absl::Now() + kDeadline;
    Supervisor::PollResult r = supervisor.Poll();
    while (r.state == Supervisor::State::kRunning && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      r = supervisor.Poll();
    }
    return r;
  }

  std::string dir_;
  std::string events_;
};

TEST_F(SupervisorTest, StartsInOrderAndStopsWorkersBeforeTheServer) {
  SupervisorOptions options;
  options.restart_backoff = absl::ZeroDuration();
  std::vector<std::string> calls;
  ChildSpec server = Server("server");
  server.stop_stage = 1;
  server.ready = [&] {
    calls.push_back("ready server");
    return absl::OkStatus();
  };
  options.children.push_back(server);
  // The workers take a while to stop: were the server signalled with them,
  // it would record its stop first.
  options.children.push_back(Server("w1", "sleep 0.3;"));
  options.children.push_back(Server("w2", "sleep 0.3;"));
  options.on_started = [&](const ChildSpec& c, pid_t pid) {
    calls.push_back("started " + c.name);
    std::ifstream pid_file(c.pid_path);
    pid_t written = -1;
    pid_file >> written;
    EXPECT_EQ(written, pid);
  };
  Supervisor supervisor(std::move(options));
  ASSERT_TRUE(supervisor.Start().ok());
  EXPECT_THAT(calls, ElementsAre("started server", "ready server", "started w1", "started w2"));
  for (const char* name : {"server", "w1", "w2"})
    ASSERT_TRUE(WaitForEvent(absl::StrCat("start ", name)));
  const pid_t server_pid = supervisor.pid("server");
  ASSERT_GT(server_pid, 0);

  supervisor.Stop();
  const auto events = Events();
  ASSERT_EQ(events.size(), 6u);
  EXPECT_THAT(std::vector<std::string>(events.begin() + 3, events.begin() + 5),
              UnorderedElementsAre("stop w1", "stop w2"));
  EXPECT_EQ(events[5], "stop server");
  EXPECT_EQ(supervisor.pid("server"), -1);
  EXPECT_NE(kill(server_pid, 0), 0) << "the server was not reaped";
}

TEST_F(SupervisorTest, ChildIgnoringSigtermIsKilledAfterTheGrace) {
  SupervisorOptions options;
  options.restart_backoff = absl::ZeroDuration();
  options.stop_grace = absl::Milliseconds(300);
  // The shell's ignored SIGTERM stays ignored by the sleep it becomes.
  options.children.push_back(Child("stubborn", "trap '' TERM; rec start $0; exec sleep 1000"));
  Supervisor supervisor(std::move(options));
  ASSERT_TRUE(supervisor.Start().ok());
  ASSERT_TRUE(WaitForEvent("start stubborn"));
  const pid_t pid = supervisor.pid("stubborn");
  const absl::Time t0 = absl::Now();
  supervisor.Stop();
  EXPECT_GE(absl::Now() - t0, absl::Milliseconds(300));
  EXPECT_EQ(supervisor.pid("stubborn"), -1);
  EXPECT_NE(kill(pid, 0), 0);
}

// Restarts back off: 200 ms, then 400 ms, then 400 ms (the cap), measured
// between the supervisor's own restarts; Poll never blocks meanwhile.
TEST_F(SupervisorTest, RestartsBackOffAndPollDoesNotBlock) {
  SupervisorOptions options;
  options.restart_backoff = absl::Milliseconds(200);
  options.restart_backoff_max = absl::Milliseconds(400);
  options.max_restarts = 3;
  std::vector<std::string> notices;
  std::vector<absl::Time> restarts;
  options.on_restart = [&](const std::string& n) { notices.push_back(n); };
  ChildSpec main = Server("main");
  main.required = true;
  options.children.push_back(main);
  options.children.push_back(Child("crashing", "rec start $0; exit 2"));
  Supervisor supervisor(std::move(options));
  ASSERT_TRUE(supervisor.Start().ok());

  std::vector<absl::Time> deaths;
  Supervisor::PollResult r;
  int polls_while_backing_off = 0;
  const absl::Time deadline = absl::Now() + kDeadline;
  while (absl::Now() < deadline) {
    const size_t before = notices.size();
    const absl::Time t0 = absl::Now();
    const bool was_down = supervisor.pid("crashing") == -1;
    r = supervisor.Poll();
    // A death is noticed during this Poll (at or after t0); a restart
    // happens during a Poll that ends now or later.
    if (notices.size() > before) deaths.push_back(t0);
    if (was_down && !deaths.empty() && supervisor.pid("crashing") > 0) {
      restarts.push_back(absl::Now());
    }
    // Dead and not yet restarted, and Poll returned.
    if (!deaths.empty() && supervisor.pid("crashing") == -1) ++polls_while_backing_off;
    if (r.state != Supervisor::State::kRunning) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(r.state, Supervisor::State::kFailed);
  ASSERT_EQ(notices.size(), 3u);
  EXPECT_THAT(notices[0], HasSubstr("restarting it (1/3) in 200ms"));
  EXPECT_THAT(notices[1], HasSubstr("restarting it (2/3) in 400ms"));
  EXPECT_THAT(notices[2], HasSubstr("restarting it (3/3) in 400ms"));
  ASSERT_EQ(restarts.size(), 3u);
  EXPECT_GE(restarts[0] - deaths[0], absl::Milliseconds(200));
  EXPECT_GE(restarts[1] - deaths[1], absl::Milliseconds(400));
  EXPECT_GE(restarts[2] - deaths[2], absl::Milliseconds(400));
  EXPECT_GT(polls_while_backing_off, 3) << "Poll waited out the back-offs";
  EXPECT_EQ(Count("start crashing"), 4);
  supervisor.Stop();
}

TEST_F(SupervisorTest, FailedChildIsRestartedUpToMaxRestarts) {
  SupervisorOptions options;
  options.restart_backoff = absl::ZeroDuration();
  options.max_restarts = 2;
  std::vector<std::string> notices;
  options.on_restart = [&](const std::string& n) { notices.push_back(n); };
  ChildSpec main = Server("main");
  main.required = true;
  options.children.push_back(main);
  const ChildSpec crashing = Child("crashing", "rec start $0; exit 2");
  options.children.push_back(crashing);
  Supervisor supervisor(std::move(options));
  ASSERT_TRUE(supervisor.Start().ok());

  const Supervisor::PollResult r = PollUntilOver(supervisor);
  const std::string what = absl::StrCat("crashing died (exit status 2); log: ", crashing.log_path);
  EXPECT_EQ(r.state, Supervisor::State::kFailed);
  EXPECT_EQ(r.message, what + "; stopping the run after 2 restarts");
  EXPECT_THAT(notices, ElementsAre(what + "; restarting it (1/2)", what + "; restarting it (2/2)"));
  EXPECT_EQ(Count("start crashing"), 3);
  EXPECT_GT(supervisor.pid("main"), 0) << "a failure alone stops nothing; Stop() does";
  ASSERT_TRUE(WaitForEvent("start main"));
  supervisor.Stop();
  EXPECT_EQ(Count("stop main"), 1);
}

TEST_F(SupervisorTest, StopPolicyEndsTheRunAtTheFirstFailure) {
  SupervisorOptions options;
  options.restart_backoff = absl::ZeroDuration();
  std::vector<std::string> notices;
  options.on_restart = [&](const std::string& n) { notices.push_back(n); };
  ChildSpec main = Server("main");
  main.required = true;
  options.children.push_back(main);
  ChildSpec crashing = Child("crashing", "rec start $0; kill -9 $$");
  crashing.on_failure = OnFailure::kStop;
  crashing.policy_name = "launch.on_worker_failure";
  options.children.push_back(crashing);
  Supervisor supervisor(std::move(options));
  ASSERT_TRUE(supervisor.Start().ok());

  const Supervisor::PollResult r = PollUntilOver(supervisor);
  EXPECT_EQ(r.state, Supervisor::State::kFailed);
  EXPECT_EQ(r.message,
            absl::StrCat("crashing died (killed by signal 9 (Killed)); log: ", crashing.log_path,
                         "; stopping the run (launch.on_worker_failure: stop)"));
  EXPECT_THAT(notices, IsEmpty());
  EXPECT_EQ(Count("start crashing"), 1);
}

TEST_F(SupervisorTest, ADeathBySignalIsReportedBeforeThePeerThatFailedBecauseOfIt) {
  // learner-0 exits 1 when learner-1, whose all-reduce it waits on, is killed:
  // both are dead by the next poll, and the run must name the killed one.
  SupervisorOptions options;
  options.restart_backoff = absl::ZeroDuration();
  for (const std::string name : {"learner-0", "learner-1"}) {
    // Each exits 1 on SIGTERM, as a rank whose peer vanished does.
    ChildSpec c = Child(name, "trap 'kill $!; exit 1' TERM; rec start $0 $1; sleep 1000 & wait");
    c.on_failure = OnFailure::kStop;
    c.policy_name = "launch.on_learner_failure";
    c.gang = c.required = true;
    options.children.push_back(c);
  }
  Supervisor supervisor(std::move(options));
  ASSERT_TRUE(supervisor.Start().ok());
  ASSERT_TRUE(WaitForEvent("start learner-0") && WaitForEvent("start learner-1"));
  const pid_t zero = supervisor.pid("learner-0");
  const pid_t one = supervisor.pid("learner-1");
  ASSERT_EQ(kill(one, SIGKILL), 0);
  // learner-0 ends by an error once learner-1 is gone; wait for both without
  // reaping them, so that one poll sees both deaths.
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, one, &info, WEXITED | WNOWAIT), 0);
  ASSERT_EQ(kill(zero, SIGTERM), 0);
  ASSERT_EQ(waitid(P_PID, zero, &info, WEXITED | WNOWAIT), 0);
  const Supervisor::PollResult r = supervisor.Poll();
  EXPECT_EQ(r.state, Supervisor::State::kFailed);
  EXPECT_THAT(r.message, ::testing::StartsWith("learner-1 died (killed by signal 9"));
}

TEST_F(SupervisorTest, ExitZeroFinishesAWorkerButNotAServer) {
  SupervisorOptions options;
  options.restart_backoff = absl::ZeroDuration();
  std::vector<std::string> notices;
  options.on_restart = [&](const std::string& n) { notices.push_back(n); };
  ChildSpec main = Server("main");
  main.required = true;
  options.children.push_back(main);
  // The server exits 0 the first time only.
  ChildSpec server =
      Child("server", absl::StrCat("rec start $0; [ -e ", dir_, "/again ] || { touch ", dir_,
                                   "/again; exit 0; }; exec sleep 1000"));
  server.may_finish = false;
  options.children.push_back(server);
  options.children.push_back(Child("worker", "rec start $0; exit 0"));
  Supervisor supervisor(std::move(options));
  ASSERT_TRUE(supervisor.Start().ok());

  const absl::Time deadline = absl::Now() + kDeadline;
  while ((supervisor.pid("worker") > 0 || notices.empty()) && absl::Now() < deadline) {
    ASSERT_EQ(supervisor.Poll().state, Supervisor::State::kRunning);
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Had the worker been restarted, Poll would have started it again at once.
  EXPECT_EQ(supervisor.pid("worker"), -1);
  EXPECT_THAT(notices, ElementsAre(absl::StrCat("server died (exit status 0); log: ",
                                                server.log_path, "; restarting it (1/3)")));
  EXPECT_GT(supervisor.pid("server"), 0);
  ASSERT_TRUE(WaitForEvent("start main"));
  // The restarted server records its start once it runs, which can be after
  // Poll returned: wait for it rather than read the file at once.
  ASSERT_TRUE(WaitForEvent("start server", 2));
  EXPECT_EQ(Count("start worker"), 1);
  EXPECT_EQ(Count("start server"), 2);
}

TEST_F(SupervisorTest, GangRestartsTogetherWithTheNextAttemptThenFinishes) {
  SupervisorOptions options;
  options.restart_backoff = absl::ZeroDuration();
  options.gang_restart_note = "restarting the gang";
  std::vector<std::string> notices;
  options.on_restart = [&](const std::string& n) { notices.push_back(n); };
  auto gang = [](ChildSpec c) {
    c.gang = c.required = true;
    c.gang_arg = [](int attempt) { return absl::StrCat("--attempt=", attempt); };
    return c;
  };
  // rank0 fails in attempt 0; rank1 would run until stopped. Both finish in attempt 1.
  const ChildSpec rank0 = gang(Child("rank0", "rec start $0 $1; [ $1 = --attempt=1 ]"));
  options.children.push_back(rank0);
  options.children.push_back(
      gang(Child("rank1",
                 "trap 'rec stop $0; kill $!; exit 0' TERM; rec start $0 $1; "
                 "[ $1 = --attempt=1 ] && exit 0; sleep 1000 & wait")));
  options.children.push_back(Server("outsider"));
  Supervisor supervisor(std::move(options));
  ASSERT_TRUE(supervisor.Start().ok());
  // rank1 must have its trap set before the gang is stopped.
  ASSERT_TRUE(WaitForEvent("start rank1 --attempt=0"));
  ASSERT_TRUE(WaitForEvent("start outsider"));
  const pid_t outsider = supervisor.pid("outsider");

  const Supervisor::PollResult r = PollUntilOver(supervisor);
  EXPECT_EQ(r.state, Supervisor::State::kDone);
  EXPECT_THAT(notices, ElementsAre(absl::StrCat("rank0 died (exit status 1); log: ", rank0.log_path,
                                                "; restarting the gang")));
  const int stopped = IndexOf("stop rank1");
  ASSERT_GE(stopped, 0);
  EXPECT_GE(IndexOf("start rank0 --attempt=0"), 0);
  EXPECT_GT(IndexOf("start rank0 --attempt=1"), stopped);
  EXPECT_GT(IndexOf("start rank1 --attempt=1"), stopped);
  EXPECT_EQ(supervisor.pid("outsider"), outsider) << "a gang restart touches the gang only";
  EXPECT_EQ(Count("start outsider"), 1);
}

TEST_F(SupervisorTest, ReadyFailureStopsWhatStartedAndStartsNothingMore) {
  SupervisorOptions options;
  options.restart_backoff = absl::ZeroDuration();
  std::vector<std::string> started;
  options.on_started = [&](const ChildSpec& c, pid_t) { started.push_back(c.name); };
  ChildSpec first = Server("first");
  pid_t first_pid = -1;
  first.ready = [&] {
    // Its trap must be set before it is stopped.
    if (!WaitForEvent("start first")) return absl::DeadlineExceededError("no start");
    std::ifstream(first.pid_path) >> first_pid;
    return absl::UnavailableError("not serving");
  };
  options.children.push_back(first);
  options.children.push_back(Server("second"));
  options.ready_timeout = absl::Milliseconds(200);
  Supervisor supervisor(std::move(options));
  const absl::Status s = supervisor.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(s.message()),
              ::testing::StartsWith("first was not ready within 200ms (not serving)"));
  EXPECT_THAT(started, ElementsAre("first"));
  EXPECT_EQ(supervisor.pid("first"), -1);
  EXPECT_EQ(Count("stop first"), 1);
  EXPECT_NE(kill(first_pid, 0), 0);
  EXPECT_EQ(Count("start second"), 0);
}

TEST_F(SupervisorTest, AChildThatDiesDuringStartUpFailsStartAtOnceWithItsLog) {
  SupervisorOptions options;
  options.restart_backoff = absl::ZeroDuration();
  ChildSpec coordinator = Child("coordinator", "echo 'coordinator: cannot open the store'; exit 3");
  int probes = 0;
  coordinator.ready = [&] {
    ++probes;
    return absl::UnavailableError("not serving");
  };
  options.children.push_back(coordinator);
  options.children.push_back(Server("worker"));
  options.ready_timeout = absl::Hours(1);  // a dead child is never waited for
  Supervisor supervisor(std::move(options));
  const absl::Time t0 = absl::Now();
  const absl::Status s = supervisor.Start();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(30));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              ::testing::StartsWith("coordinator died during start-up (exit status 3)"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("coordinator: cannot open the store"));
  EXPECT_EQ(Count("start worker"), 0);
}

TEST(DescribeExitTest, ExitCodesAndSignals) {
  auto status_of = [](const std::string& script) {
    auto pid = SpawnProcess("/bin/sh", {"sh", "-c", script});
    EXPECT_TRUE(pid.ok());
    int status = 0;
    waitpid(*pid, &status, 0);
    return status;
  };
  EXPECT_EQ(DescribeExit(status_of("exit 3")), "exit status 3");
  EXPECT_EQ(DescribeExit(status_of("kill -9 $$")), "killed by signal 9 (Killed)");
  EXPECT_EQ(DescribeExit(status_of("kill -TERM $$")), "killed by signal 15 (Terminated)");
}

}  // namespace
}  // namespace bpo::launch
