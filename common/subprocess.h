// Running a program to completion with its output in a log file: what the
// pipelines (a child `bpo` per step) and the tokenizer trainer (Debian's
// spm_train) need. Long-lived children that are watched and restarted are
// bpo local's own business (cli/local_main.cc).
#ifndef BPO_COMMON_SUBPROCESS_H_
#define BPO_COMMON_SUBPROCESS_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace bpo {

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
