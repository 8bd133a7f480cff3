// Flags that several commands take (defined once in shared_flags.cc; each
// command names the ones it accepts in Command::shared_flags).
#ifndef BPO_CLI_SHARED_FLAGS_H_
#define BPO_CLI_SHARED_FLAGS_H_

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "bpo/v1/config.pb.h"
#include "common/address_file.h"
#include "common/transport.h"
#include "model/policy.h"

ABSL_DECLARE_FLAG(std::string, config);
ABSL_DECLARE_FLAG(std::string, metrics_address);
ABSL_DECLARE_FLAG(std::string, address_file);
ABSL_DECLARE_FLAG(std::string, pairs);
ABSL_DECLARE_FLAG(std::string, coordinator);
ABSL_DECLARE_FLAG(std::string, name);
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, policy);
ABSL_DECLARE_FLAG(int64_t, max_prompt_tokens);
ABSL_DECLARE_FLAG(std::string, reward_model);
ABSL_DECLARE_FLAG(std::string, task);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, adapter);
ABSL_DECLARE_FLAG(std::string, merge_mode);
ABSL_DECLARE_FLAG(std::string, prompt);
ABSL_DECLARE_FLAG(std::string, response);
ABSL_DECLARE_FLAG(int64_t, max_new_tokens);
ABSL_DECLARE_FLAG(int64_t, max_length);
ABSL_DECLARE_FLAG(int64_t, batch_size);
ABSL_DECLARE_FLAG(std::string, dtype);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(bool, json);

namespace bpo::cli {
// __FILE__ of shared_flags.cc, as Abseil records it for these flags.
const char* SharedFlagsFile();

// --dtype and --device.
absl::StatusOr<model::LoadOptions> LoadOptionsFromFlags();
// --merge_mode; INVALID_ARGUMENT naming the flag.
absl::StatusOr<model::MergeMode> MergeModeFromFlags();
// A comma-separated list of adapter directories.
std::vector<std::string> AdaptersFromFlag(const std::string& flag);
// The transport of the process `name` (LoadTransport) with --tls_ca,
// --tls_cert and --tls_key overriding the config's security section.
absl::StatusOr<TransportSecurity> TransportFromFlags(const bpo::v1::RunConfig& config,
                                                     absl::string_view name);
// Writes `addresses` to --address_file when it is set; a "host:port" on a
// wildcard host (0.0.0.0, ::) is written with this machine's name, the
// address other machines dial (PublishedAddress).
absl::Status PublishAddresses(const AddressMap& addresses);
}  // namespace bpo::cli

#endif  // BPO_CLI_SHARED_FLAGS_H_
