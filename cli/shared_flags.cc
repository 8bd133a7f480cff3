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
ABSL_FLAG(std::string, coordinator, "",
          "Coordinator address (host:port); empty uses endpoints.coordinator of the config.");
ABSL_FLAG(std::string, name, "",
          "Worker name, stable across restarts (the coordinator keeps its identity and leases "
          "by name); empty: <kind>-<host>-<pid>.");
ABSL_FLAG(std::string, policy, "", "Policy model directory; overrides model.policy.");
ABSL_FLAG(int64_t, max_prompt_tokens, 512,
          "Longer prompts keep BOS and their last tokens (actors and the learner).");
ABSL_FLAG(std::string, reward_model, "",
          "Hugging Face directory of a DeBERTa-v3 reward model; overrides model.reward_model.");
ABSL_FLAG(std::string, task, "", "Built-in synthetic task: tldr or dialogue.");
