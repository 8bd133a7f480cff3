// The `bpo` binary: one subcommand per process role and tool.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "cli/dispatch.h"
#include "common/allocator.h"
#include "common/logging.h"

ABSL_FLAG(std::string, log_level, "info", "Minimum log level: debug, info, warning or error.");

namespace bpo::cli {

std::vector<const Command*> AllCommands() {
  // One command a line, in `bpo --help` order.
  // clang-format off
  return {&QuickstartCommand(),
          &ReproduceCommand(),
          &RunCommand(),
          &LocalCommand(),
          &DeploySlurmCommand(),
          &DeployStatusCommand(),
          &DeployWatchCommand(),
          &CoordinatorCommand(),
          &ActorCommand(),
          &AnnotatorCommand(),
          &AddRaterCommand(),
          &LearnerCommand(),
          &ConfigCheckCommand(),
          &ConfigDefaultsCommand(),
          &ModelInfoCommand(),
          &GenerateCommand(),
          &LogprobsCommand(),
          &ScoreCommand(),
          &TaskGenerateCommand(),
          &SftCommand(),
          &TrainRmCommand(),
          &EvalCommand(),
          &AggregateCommand(),
          &CertsInitCommand(),
          &CertsIssueCommand(),
          &CertsTokenCommand(),
          &InfoCommand()};
  // clang-format on
}

}  // namespace bpo::cli

namespace {

// An exception escaping a thread other than main's (or a noexcept function)
// ends the process with the exception's message and exit code 1 instead of
// abort() and a core dump.
[[noreturn]] void OnTerminate() {
  std::string what = "std::terminate without an active exception";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
      what = "an unknown exception";
    }
  }
  std::fprintf(stderr, "bpo: internal error: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(bpo::cli::kExitFailure);
}

}  // namespace

int main(int argc, char** argv) {
  std::set_terminate(OnTerminate);
  bpo::TuneAllocatorForTensors();
  const int code = bpo::cli::Dispatch(argc, argv, bpo::cli::AllCommands(), __FILE__, [] {
    auto level = bpo::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
    if (!level.ok()) return level.status();
    bpo::SetMinLogLevel(*level);
    return absl::OkStatus();
  });
  return code;
}
