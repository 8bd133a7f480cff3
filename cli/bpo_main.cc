// The `bpo` binary: one subcommand per process role and tool.
#include "absl/flags/flag.h"
#include "cli/command.h"
#include "cli/dispatch.h"
#include "common/allocator.h"
#include "common/logging.h"

ABSL_FLAG(std::string, log_level, "info", "Minimum log level: debug, info, warning or error.");

namespace bpo::cli {

std::vector<const Command*> AllCommands() {
  return {&QuickstartCommand(), &ReproduceCommand(), &RunCommand(),       &LocalCommand(),     &CoordinatorCommand(), &ActorCommand(),
          &AnnotatorCommand(), &LearnerCommand(),   &ConfigCheckCommand(),
          &ConfigDefaultsCommand(), &ModelInfoCommand(), &GenerateCommand(),
          &LogprobsCommand(),  &ScoreCommand(),     &TaskGenerateCommand(), &SftCommand(), &TrainRmCommand(), &EvalCommand(), &AggregateCommand(), &InfoCommand()};
}

}  // namespace bpo::cli

int main(int argc, char** argv) {
  bpo::TuneAllocatorForTensors();
  const int code = bpo::cli::Dispatch(argc, argv, bpo::cli::AllCommands(), __FILE__,
                                      [] {
                                        auto level =
                                            bpo::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
                                        if (!level.ok()) return level.status();
                                        bpo::SetMinLogLevel(*level);
                                        return absl::OkStatus();
                                      });
  return code;
}
