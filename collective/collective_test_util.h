// Helpers for the multi-process collective tests: a test binary re-executes
// itself as worker processes (posix_spawn of /proc/self/exe: fork followed at
// once by exec, safe with LibTorch's and Gloo's threads running) and waits for
// them with a deadline.
#ifndef BPO_COLLECTIVE_COLLECTIVE_TEST_UTIL_H_
#define BPO_COLLECTIVE_COLLECTIVE_TEST_UTIL_H_

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

extern char** environ;

namespace bpo::collective::testing {

// A fresh directory under the test's temporary directory.
inline std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "bpo_collective_XXXXXX";
  EXPECT_NE(mkdtemp(pattern.data()), nullptr);
  return pattern;
}

// A loopback port that was free a moment ago.
inline int FreeTcpPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size), 0);
  close(fd);
  return ntohs(address.sin_port);
}

// Starts this binary running only `gtest_filter`, with `env` added to ours.
inline pid_t SpawnSelf(const std::string& gtest_filter,
                       const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<std::string> entries;
  for (const auto& [name, value] : env) entries.push_back(absl::StrCat(name, "=", value));
  for (char** e = environ; *e != nullptr; ++e) entries.push_back(*e);
  std::vector<char*> envp;
  for (std::string& e : entries) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string filter = "--gtest_filter=" + gtest_filter;
  char* argv[] = {exe.data(), filter.data(), nullptr};
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, envp.data()), 0);
  return pid;
}

// Wait statuses of `pids`; any still running after `limit` is killed (a test
// failure: a worker hung).
inline std::vector<int> WaitAll(const std::vector<pid_t>& pids, absl::Duration limit) {
  std::vector<int> statuses(pids.size(), -1);
  const absl::Time deadline = absl::Now() + limit;
  size_t running = pids.size();
  while (running > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      int status = 0;
      if (statuses[i] == -1 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        statuses[i] = status;
        --running;
      }
    }
    if (running > 0 && absl::Now() > deadline) {
      ADD_FAILURE() << "workers still running after " << limit << ": killing them";
      for (size_t i = 0; i < pids.size(); ++i) {
        if (statuses[i] != -1) continue;
        kill(pids[i], SIGKILL);
        waitpid(pids[i], &statuses[i], 0);
      }
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return statuses;
}

}  // namespace bpo::collective::testing

#endif  // BPO_COLLECTIVE_COLLECTIVE_TEST_UTIL_H_
