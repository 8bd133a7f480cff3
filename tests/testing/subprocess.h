// Child processes for tests: run a command to completion, or keep a server
// running until the test ends.
#ifndef BPO_TESTS_TESTING_SUBPROCESS_H_
#define BPO_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace bpo::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or the timeout
  std::string out;
  std::string err;
};

// Runs argv[0] (searched on PATH) with no stdin; kills it after `timeout`.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout = absl::Seconds(60));

// A long-running child whose stdout and stderr go to `log_path`. The
// destructor kills it (SIGTERM, then SIGKILL) and reaps it.
class Subprocess {
 public:
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::string& log_path);
  Subprocess(Subprocess&& other) noexcept
      : pid_(other.pid_), exited_(other.exited_), exit_code_(other.exit_code_) {
    other.pid_ = -1;
  }
  Subprocess& operator=(Subprocess&&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // False once the child has exited (it is reaped then, and never signalled
  // again: its pid may belong to another process by now).
  bool Running();
  // The exit status once Running() returned false; -1 when a signal ended it.
  int exit_code() const { return exit_code_; }

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool exited_ = false;
  int exit_code_ = -1;
};

// A TCP port on 127.0.0.1 that refuses connections for as long as this
// object lives: bound (so nothing else can take it) but not listening.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:<port>"

 private:
  int fd_ = -1;
  int port_ = 0;
};

// The TCP port process `pid` listens on (found through /proc: the process's
// socket inodes against /proc/net/tcp{,6}), waiting up to `timeout` for it
// to listen. For servers that bind port 0 and do not say which port they got.
absl::StatusOr<int> ListeningPort(pid_t pid, absl::Duration timeout = absl::Seconds(60));

// Full path of `name` on PATH, or "".
std::string FindProgram(const std::string& name);

}  // namespace bpo::testing

#endif  // BPO_TESTS_TESTING_SUBPROCESS_H_
