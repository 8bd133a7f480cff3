#include "cli/shared_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/endpoint.h"
#include "model/policy_text.h"

ABSL_FLAG(std::string, config, "", "Run config (YAML); empty uses the built-in defaults.");
ABSL_FLAG(std::string, metrics_address, "",
          "Serve /metrics here (host:port, port 0 picks one); empty uses endpoints.metrics.");
ABSL_FLAG(std::string, address_file, "",
          "Write the addresses this process serves on (gRPC, /metrics), as bound (port 0 "
          "included), to this JSON file, replaced at every start (common/address_file.h).");
ABSL_FLAG(std::string, pairs, "",
          "JSONL file: {prompt, response} objects (score) or {prompt, chosen, rejected[, "
          "chosen_logprob, rejected_logprob]} preference pairs (learner).");

ABSL_FLAG(std::string, coordinator, "",
          "Coordinator address (host:port); empty uses endpoints.coordinator of the config.");
ABSL_FLAG(std::string, name, "",
          "Worker name, stable across restarts (the coordinator keeps its identity and leases "
          "by name); empty: <kind>-<host>-<pid>.");
ABSL_FLAG(std::string, tls_ca, "", "The run CA's certificate (PEM); overrides security.ca.");
ABSL_FLAG(std::string, tls_cert, "",
          "This process's certificate (PEM, from `bpo certs issue`); overrides security.cert.");
ABSL_FLAG(std::string, tls_key, "", "This process's private key (PEM); overrides security.key.");
ABSL_FLAG(std::string, policy, "", "Policy model directory; overrides model.policy.");
ABSL_FLAG(int64_t, max_prompt_tokens, 512,
          "Longer prompts keep BOS and their last tokens (actors and the learner).");
ABSL_FLAG(std::string, reward_model, "",
          "Hugging Face directory of a DeBERTa-v3 reward model; overrides model.reward_model.");
ABSL_FLAG(std::string, task, "", "Built-in synthetic task: tldr or dialogue.");
ABSL_FLAG(std::string, out, "",
          "Output directory: sft.jsonl, prompts.jsonl and test.jsonl (task generate); "
          "bpo.sbatch and run.yaml (deploy slurm).");
// The checkpoint commands' (bpo model info, generate, logprobs, score, eval).
ABSL_FLAG(std::string, model, "", "Hugging Face model directory of the policy (causal LM).");
ABSL_FLAG(std::string, adapter, "",
          "PEFT LoRA adapter directories, comma-separated; several are merged (--merge_mode).");
ABSL_FLAG(std::string, merge_mode, "peft_linear",
          "How several adapters merge: peft_linear or mean_delta.");
ABSL_FLAG(std::string, prompt, "", "Prompt text.");
ABSL_FLAG(std::string, response, "", "Response text.");
ABSL_FLAG(int64_t, max_new_tokens, 128, "Tokens to generate at most.");
ABSL_FLAG(int64_t, max_length, 640,
          "Reward model: max tokens of [CLS] prompt [SEP] response [SEP].");
ABSL_FLAG(int64_t, batch_size, 16, "Prompts or pairs per batch.");
ABSL_FLAG(std::string, dtype, "float32", "float32 or bfloat16.");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:N.");
ABSL_FLAG(bool, json, false, "Print JSON (one object per line) for scripts.");

namespace bpo::cli {

const char* SharedFlagsFile() { return __FILE__; }

absl::StatusOr<model::LoadOptions> LoadOptionsFromFlags() {
  return model::ParseLoadOptions(absl::GetFlag(FLAGS_dtype), absl::GetFlag(FLAGS_device));
}

absl::StatusOr<model::MergeMode> MergeModeFromFlags() {
  auto mode = model::ParseMergeMode(absl::GetFlag(FLAGS_merge_mode));
  if (!mode.ok())
    return absl::InvalidArgumentError(absl::StrCat("--merge_mode: ", mode.status().message()));
  return mode;
}

std::vector<std::string> AdaptersFromFlag(const std::string& flag) {
  return absl::StrSplit(flag, ',', absl::SkipEmpty());
}

absl::StatusOr<TransportSecurity> TransportFromFlags(const bpo::v1::RunConfig& config,
                                                     absl::string_view name) {
  return LoadTransport(
      config, name,
      {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key)});
}

absl::Status PublishAddresses(const AddressMap& addresses) {
  const std::string path = absl::GetFlag(FLAGS_address_file);
  if (path.empty()) return absl::OkStatus();
  AddressMap dialable = addresses;
  for (auto& [key, address] : dialable) {
    if (absl::StatusOr<Endpoint> ep = ParseEndpoint(address); ep.ok()) {
      address = PublishedAddress(address, ep->port);
    }
  }
  return WriteAddressFile(path, dialable);
}

}  // namespace bpo::cli
