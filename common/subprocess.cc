#include "common/subprocess.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace bpo {

absl::StatusOr<pid_t> SpawnProcess(const std::string& program, std::vector<std::string> args,
                                   const SpawnOptions& options) {
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls (no allocation) until exec.
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  std::vector<char*> envp;
  if (!options.env.empty()) {
    auto overridden = [&](const char* entry) {
      for (const std::string& e : options.env) {
        const size_t eq = e.find('=');
        if (eq != std::string::npos && std::strncmp(entry, e.data(), eq + 1) == 0) return true;
      }
      return false;
    };
    for (char** e = environ; *e != nullptr; ++e) {
      if (!overridden(*e)) env_storage.emplace_back(*e);
    }
    env_storage.insert(env_storage.end(), options.env.begin(), options.env.end());
    for (std::string& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  const char* log = options.log_path.empty() ? nullptr : options.log_path.c_str();
  const int log_flags = O_WRONLY | O_CREAT | (options.append_log ? O_APPEND : O_TRUNC);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork failed: ", std::strerror(errno)));
  if (pid == 0) {
    if (options.parent_death_signal != 0) prctl(PR_SET_PDEATHSIG, options.parent_death_signal);
    if (options.new_process_group) setpgid(0, 0);
    int out = options.output_fd;
    if (out < 0 && log != nullptr) out = open(log, log_flags, 0644);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
      if (out > 2) close(out);
    }
    if (envp.empty()) {
      execv(program.c_str(), argv.data());
    } else {
      execve(program.c_str(), argv.data(), envp.data());
    }
    _exit(127);
  }
  return pid;
}

absl::StatusOr<int> RunToLog(const std::string& program, std::vector<std::string> args,
                             const std::string& log,
                             const std::function<void(std::string_view)>& on_output) {
  // The read end is close-on-exec, so the child does not hold it open.
  int fds[2] = {-1, -1};
  if (on_output && pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  SpawnOptions options;
  if (on_output) {
    options.output_fd = fds[1];
  } else {
    options.log_path = log;
  }
  const absl::StatusOr<pid_t> pid = SpawnProcess(program, std::move(args), options);
  if (on_output) close(fds[1]);
  if (!pid.ok()) {
    if (on_output) close(fds[0]);
    return pid.status();
  }
  if (on_output) {
    std::FILE* copy = std::fopen(log.c_str(), "w");
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (copy != nullptr) std::fwrite(buf, 1, n, copy);
      on_output(std::string_view(buf, static_cast<size_t>(n)));
    }
    close(fds[0]);
    if (copy != nullptr) std::fclose(copy);
  }
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError("waitpid failed");
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace bpo
