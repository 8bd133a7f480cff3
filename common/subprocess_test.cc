#include "common/subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace bpo {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string LogPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          absl::StrCat("bpo_subprocess_", getpid(), "_", name))
      .string();
}

TEST(SubprocessTest, ExitCodeAndBothStreamsInTheLog) {
  const std::string log = LogPath("plain");
  auto code = RunToLog("/bin/sh", {"sh", "-c", "echo out; echo err >&2; exit 3"}, log);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 3);
  EXPECT_EQ(ReadAll(log), "out\nerr\n");
  std::filesystem::remove(log);
}

TEST(SubprocessTest, OutputPassesThroughTheCallbackAndTheLog) {
  const std::string log = LogPath("tee");
  std::string seen;
  auto code = RunToLog("/bin/sh", {"sh", "-c", "echo one; echo two >&2"}, log,
                       [&](std::string_view chunk) { seen.append(chunk); });
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(seen, "one\ntwo\n");
  EXPECT_EQ(ReadAll(log), "one\ntwo\n");
  std::filesystem::remove(log);
}

TEST(SubprocessTest, MissingProgramAndSignals) {
  const std::string log = LogPath("bad");
  auto missing = RunToLog("/nonexistent/program", {"program"}, log);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(*missing, 127);
  auto killed = RunToLog("/bin/sh", {"sh", "-c", "kill -9 $$"}, log);
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(*killed, 128 + 9);
  std::filesystem::remove(log);
}

// Reaps `pid`; SIGKILLs it first when it has not ended within 60 s.
int WaitFor(pid_t pid) {
  int status = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) kill(pid, SIGKILL);
    absl::SleepFor(absl::Milliseconds(10));
  }
  return status;
}

TEST(SpawnProcessTest, AppendsToTheLogAndReturnsAtOnce) {
  const std::string log = LogPath("append");
  std::ofstream(log) << "before\n";
  SpawnOptions options;
  options.log_path = log;
  options.append_log = true;
  auto pid = SpawnProcess("/bin/sh", {"sh", "-c", "echo out; echo err >&2; exit 4"}, options);
  ASSERT_TRUE(pid.ok()) << pid.status();
  const int status = WaitFor(*pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 4);
  EXPECT_EQ(ReadAll(log), "before\nout\nerr\n");
  std::filesystem::remove(log);
}

TEST(SpawnProcessTest, OutputFdAndOwnProcessGroup) {
  const std::string log = LogPath("group");
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  SpawnOptions options;
  options.output_fd = fd;
  options.new_process_group = true;
  // Field 5 of /proc/<pid>/stat is the process group.
  auto pid = SpawnProcess("/bin/sh", {"sh", "-c", "cut -d' ' -f5 /proc/$$/stat"}, options);
  close(fd);
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(WaitFor(*pid), 0);
  EXPECT_EQ(ReadAll(log), absl::StrCat(*pid, "\n"));
  std::filesystem::remove(log);
}

TEST(SpawnProcessTest, ParentDeathSignalReachesTheChild) {
  const std::string ready = LogPath("ready");
  SpawnOptions options;
  options.parent_death_signal = SIGTERM;
  absl::StatusOr<pid_t> pid;
  // The signal follows the death of the spawning thread: this one ends once
  // the child runs (its prctl came before exec).
  std::thread([&] {
    pid = SpawnProcess("/bin/sh", {"sh", "-c", absl::StrCat("echo > ", ready, "; exec sleep 1000")},
                       options);
    while (pid.ok() && !std::filesystem::exists(ready)) absl::SleepFor(absl::Milliseconds(5));
  }).join();
  ASSERT_TRUE(pid.ok()) << pid.status();
  const int status = WaitFor(*pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  std::filesystem::remove(ready);
}

TEST(SpawnProcessTest, EnvIsAddedAndReplacesTheParentsValue) {
  const std::string log = LogPath("env");
  ASSERT_EQ(setenv("BPO_SUBPROCESS_TEST_KEEP", "parent", 1), 0);
  ASSERT_EQ(setenv("BPO_SUBPROCESS_TEST_REPLACE", "parent", 1), 0);
  SpawnOptions options;
  options.log_path = log;
  options.env = {"BPO_SUBPROCESS_TEST_REPLACE=child", "BPO_SUBPROCESS_TEST_NEW=a=b"};
  auto pid = SpawnProcess("/bin/sh",
                          {"sh", "-c",
                           "echo $BPO_SUBPROCESS_TEST_KEEP $BPO_SUBPROCESS_TEST_REPLACE "
                           "$BPO_SUBPROCESS_TEST_NEW; env | grep -c BPO_SUBPROCESS_TEST_REPLACE"},
                          options);
  ASSERT_TRUE(pid.ok()) << pid.status();
  int status = 0;
  ASSERT_EQ(waitpid(*pid, &status, 0), *pid);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(ReadAll(log), "parent child a=b\n1\n");
  unsetenv("BPO_SUBPROCESS_TEST_KEEP");
  unsetenv("BPO_SUBPROCESS_TEST_REPLACE");
  std::filesystem::remove(log);
}

TEST(SpawnProcessTest, MissingProgramExits127) {
  auto pid = SpawnProcess("/nonexistent/program", {"program"});
  ASSERT_TRUE(pid.ok()) << pid.status();
  const int status = WaitFor(*pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 127);
}

}  // namespace
}  // namespace bpo
