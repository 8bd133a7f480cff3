// Running another `bpo` command (this binary, /proc/self/exe) as a child
// process, as the pipelines (quickstart, reproduce) do step by step. Prints
// progress on stdout; not thread-safe (one step at a time).
#ifndef BPO_EXPERIMENTS_CHILD_H_
#define BPO_EXPERIMENTS_CHILD_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace bpo::experiments {

// Prints "== what ... ", runs `bpo args...` with stdout and stderr to `log`
// (and, when show_output, to the terminal too, indented), prints "done in N
// s" or "FAILED; log: ...". INTERNAL naming the command and the log when it
// could not start or exited non-zero.
absl::Status RunBpoStep(const std::string& what, std::vector<std::string> args,
                        const std::string& log, bool show_output = false);

// The same without the "==" line and timing.
absl::Status RunBpoQuietly(std::vector<std::string> args, const std::string& log);

}  // namespace bpo::experiments

#endif  // BPO_EXPERIMENTS_CHILD_H_
