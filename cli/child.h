// Running another `bpo` command as a child process, as the pipelines
// (quickstart, reproduce) do step by step.
#ifndef BPO_CLI_CHILD_H_
#define BPO_CLI_CHILD_H_

#include <string>
#include <vector>

namespace bpo::cli {

// Prints "== what ... ", runs `bpo args...` (this binary) with stdout and
// stderr to `log` (and, when show_output, to the terminal too, indented),
// prints "done in N s" or "FAILED; log: ..."; true on exit status 0.
bool RunBpoStep(const std::string& what, std::vector<std::string> args, const std::string& log,
                bool show_output = false);

// The same without the "==" line and timing: true on exit status 0.
bool RunBpoQuietly(std::vector<std::string> args, const std::string& log);

}  // namespace bpo::cli

#endif  // BPO_CLI_CHILD_H_
