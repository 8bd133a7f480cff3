#include "cli/child.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace bpo::cli {

namespace {

bool Run(std::vector<std::string> args, const std::string& log, bool show_output) {
  args.insert(args.begin(), "bpo");
  std::cout << std::flush;
  const pid_t pid = fork();
  if (pid == 0) {
    if (!show_output) {
      if (std::freopen(log.c_str(), "w", stdout) == nullptr) _exit(126);
      dup2(1, 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  if (pid < 0) return false;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

bool RunBpoStep(const std::string& what, std::vector<std::string> args, const std::string& log,
                bool show_output) {
  const absl::Time t0 = absl::Now();
  std::cout << "== " << what << (show_output ? "\n" : " ... ") << std::flush;
  const bool ok = Run(std::move(args), log, show_output);
  std::cout << (ok ? absl::StrFormat("done in %.0f s\n", absl::ToDoubleSeconds(absl::Now() - t0))
                   : absl::StrCat("FAILED; log: ", log, "\n"))
            << std::flush;
  return ok;
}

bool RunBpoQuietly(std::vector<std::string> args, const std::string& log) {
  return Run(std::move(args), log, false);
}

}  // namespace bpo::cli
