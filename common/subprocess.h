// Starting programs as child processes: one fork/exec for everything that
// runs one. SpawnProcess starts a child and returns at once (the launcher's
// watched children, launch/supervisor.h); RunToLog runs a program to
// completion with its output in a log file (the pipelines' child `bpo` steps,
// the tokenizer trainer's spm_train).
#ifndef BPO_COMMON_SUBPROCESS_H_
#define BPO_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace bpo {

struct SpawnOptions {
  // Where the child's stdout and stderr both go: `output_fd` when >= 0 (a
  // pipe's write end, say; the child's copy is closed after it is dup'ed),
  // else the file `log_path` when set, opened by the child (appended to when
  // `append_log`, else truncated; when it cannot be opened the child keeps
  // the parent's streams), else the parent's streams.
  int output_fd = -1;
  std::string log_path;
  bool append_log = false;
  // The child leads a process group of its own, so a terminal's Ctrl-C
  // reaches the parent only (which then stops its children itself).
  bool new_process_group = false;
  // When not 0, the signal the child gets when the parent thread that
  // spawned it dies (prctl PR_SET_PDEATHSIG).
  int parent_death_signal = 0;
  // "NAME=value" entries set in the child's environment, on top of (and
  // replacing the same names of) the parent's.
  std::vector<std::string> env;
};

// Starts `program` with argv `args` (args[0] is the name it sees) and
// returns its pid without waiting; the caller reaps it (waitpid). stdio
// buffers are flushed first. INTERNAL when fork fails; a program that
// cannot be executed exits 127. Safe to call from a multi-threaded process:
// the child only makes async-signal-safe calls before exec.
absl::StatusOr<pid_t> SpawnProcess(const std::string& program, std::vector<std::string> args,
                                   const SpawnOptions& options = {});

// Runs `program` with argv `args` (args[0] is the name it sees), stdout and
// stderr both written to `log` (truncated first); when `on_output` is set
// they also pass through it, chunk by chunk, as they come. Waits for the
// end. Returns the exit code, or 128 + signal when a signal ended it;
// INTERNAL when it could not be started (pipe or fork failed), and a
// program that cannot be executed exits 127.
absl::StatusOr<int> RunToLog(const std::string& program, std::vector<std::string> args,
                             const std::string& log,
                             const std::function<void(std::string_view)>& on_output = nullptr);

}  // namespace bpo

#endif  // BPO_COMMON_SUBPROCESS_H_
