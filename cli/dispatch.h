// Command-line dispatch for `bpo`: picks the subcommand, prints help, checks
// that only the subcommand's own (and global) flags are given, then parses
// them with Abseil.
#ifndef BPO_CLI_DISPATCH_H_
#define BPO_CLI_DISPATCH_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/command.h"

namespace bpo::cli {

// `global_flags_file` is the __FILE__ of the main that defines the flags every
// command accepts (--log_level); `apply_global_flags` runs after parsing and
// may refuse their values.
int Dispatch(int argc, char** argv, const std::vector<const Command*>& commands,
             const char* global_flags_file,
             const std::function<absl::Status()>& apply_global_flags);

}  // namespace bpo::cli

#endif  // BPO_CLI_DISPATCH_H_
