#include "common/subprocess.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace bpo {

absl::StatusOr<int> RunToLog(const std::string& program, std::vector<std::string> args,
                             const std::string& log,
                             const std::function<void(std::string_view)>& on_output) {
  int fds[2] = {-1, -1};
  if (on_output && pipe(fds) != 0) return absl::InternalError("pipe failed");
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    int out = -1;
    if (on_output) {
      close(fds[0]);
      out = fds[1];
    } else {
      out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
      close(out);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  if (on_output) {
    close(fds[1]);
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
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError("waitpid failed");
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace bpo
