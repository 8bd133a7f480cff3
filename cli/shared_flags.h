// Flags that several commands take (defined once in shared_flags.cc; each
// command names the ones it accepts in Command::shared_flags).
#ifndef BPO_CLI_SHARED_FLAGS_H_
#define BPO_CLI_SHARED_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, config);
ABSL_DECLARE_FLAG(std::string, metrics_address);
ABSL_DECLARE_FLAG(std::string, pairs);
ABSL_DECLARE_FLAG(std::string, coordinator);
ABSL_DECLARE_FLAG(std::string, name);
ABSL_DECLARE_FLAG(std::string, policy);
ABSL_DECLARE_FLAG(int64_t, max_prompt_tokens);
ABSL_DECLARE_FLAG(std::string, reward_model);
ABSL_DECLARE_FLAG(std::string, task);

namespace bpo::cli {
// __FILE__ of shared_flags.cc, as Abseil records it for these flags.
const char* SharedFlagsFile();
}  // namespace bpo::cli

#endif  // BPO_CLI_SHARED_FLAGS_H_
