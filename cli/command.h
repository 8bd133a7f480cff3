// The `bpo` binary's subcommands. Each lives in its own *_main.cc, which
// defines its Abseil flags (flags are defined only in mains) and a Command
// that names the file, so `bpo <command> --help` lists exactly its flags and
// a flag of another command is refused.
#ifndef BPO_CLI_COMMAND_H_
#define BPO_CLI_COMMAND_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace bpo::cli {

struct Command {
  const char* name;        // "config check": one or more words
  const char* summary;     // one line for `bpo --help`
  const char* usage;       // "bpo config check FILE [flags]"
  const char* flags_file;  // __FILE__ of the file that defines its flags
  int min_args;
  int max_args;
  // Runs with the positional arguments after the command words; returns the
  // process exit code.
  int (*run)(const std::vector<std::string>& args);
  // When several commands share one file's flags: the names this one takes.
  std::vector<std::string> only_flags = {};
  // Flags of cli/shared_flags.cc this command takes.
  std::vector<std::string> shared_flags = {};
  // Other names that run the same command ("model generate" for "generate");
  // `bpo --help` and `bpo <command> --help` list them.
  std::vector<std::string> aliases = {};
};

// Exit codes shared by all commands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the command ran and failed (bad config, ...)
inline constexpr int kExitUsage = 2;    // bad command line
// A worker whose work loop stalled (coordinator.stall_seconds); restart it.
inline constexpr int kExitStalled = 75;

// Prints "bpo <command>: <message>" to stderr and returns kExitFailure: how a
// command reports the error that ends it.
int Fail(std::string_view command, const absl::Status& status);

const Command& ConfigCheckCommand();
const Command& ConfigDefaultsCommand();
const Command& InfoCommand();
const Command& RunCommand();
const Command& ModelInfoCommand();
const Command& GenerateCommand();
const Command& LogprobsCommand();
const Command& ScoreCommand();
const Command& LearnerCommand();
const Command& CoordinatorCommand();
const Command& ActorCommand();
const Command& AnnotatorCommand();
const Command& AddRaterCommand();
const Command& LocalCommand();
const Command& DeploySlurmCommand();
const Command& DeployStatusCommand();
const Command& DeployWatchCommand();
const Command& TaskGenerateCommand();
const Command& EvalCommand();
const Command& SftCommand();
const Command& TrainRmCommand();
const Command& ReproduceCommand();
const Command& QuickstartCommand();
const Command& AggregateCommand();
const Command& CertsInitCommand();
const Command& CertsIssueCommand();
const Command& CertsTokenCommand();

// Every command, in the order `bpo --help` lists them.
std::vector<const Command*> AllCommands();

}  // namespace bpo::cli

#endif  // BPO_CLI_COMMAND_H_
