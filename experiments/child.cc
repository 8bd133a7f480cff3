#include "experiments/child.h"

#include <functional>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/subprocess.h"

namespace bpo::experiments {

namespace {

// show_output: the child's output also reaches the terminal, indented.
absl::Status Run(std::vector<std::string> args, const std::string& log, bool show_output) {
  const std::string command = args.empty() ? "" : args[0];
  args.insert(args.begin(), "bpo");
  std::cout << std::flush;
  bool line_start = true;
  std::function<void(std::string_view)> echo;
  if (show_output) {
    echo = [&](std::string_view chunk) {
      for (char c : chunk) {
        if (line_start) std::cout << "   ";
        std::cout << c;
        line_start = c == '\n';
      }
      std::cout << std::flush;
    };
  }
  const absl::StatusOr<int> code = RunToLog("/proc/self/exe", std::move(args), log, echo);
  if (!code.ok()) {
    return absl::InternalError(
        absl::StrCat("bpo ", command, ": ", code.status().message(), "; log: ", log));
  }
  if (*code != 0) {
    return absl::InternalError(
        absl::StrCat("bpo ", command, " exited with status ", *code, "; log: ", log));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunBpoStep(const std::string& what, std::vector<std::string> args,
                        const std::string& log, bool show_output) {
  const absl::Time t0 = absl::Now();
  std::cout << "== " << what << (show_output ? "\n" : " ... ") << std::flush;
  absl::Status status = Run(std::move(args), log, show_output);
  std::cout << (status.ok()
                    ? absl::StrFormat("done in %.0f s\n", absl::ToDoubleSeconds(absl::Now() - t0))
                    : absl::StrCat("FAILED; log: ", log, "\n"))
            << std::flush;
  return status;
}

absl::Status RunBpoQuietly(std::vector<std::string> args, const std::string& log) {
  return Run(std::move(args), log, false);
}

}  // namespace bpo::experiments
