#include "cli/shared_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, config, "", "Run config (YAML); empty uses the built-in defaults.");
ABSL_FLAG(std::string, metrics_address, "",
          "Serve /metrics here (host:port, port 0 picks one); empty uses endpoints.metrics.");
ABSL_FLAG(std::string, pairs, "",
          "JSONL file: {prompt, response} objects (score) or {prompt, chosen, rejected[, "
          "chosen_logprob, rejected_logprob]} preference pairs (learner).");

namespace bpo::cli {
const char* SharedFlagsFile() { return __FILE__; }
}  // namespace bpo::cli
