// Typed run configuration: YAML in, a validated bpo.v1.RunConfig out.
//
// The schema is proto/bpo/v1/config.proto; its field names are the YAML keys
// and its defaults the built-in defaults. Every error names the file, line and
// column, the key path and the reason, for example
//   configs/x.yaml:4:11: schedule.phases: F = 3 does not divide schedule.total_steps = 100
// and all errors of a file are reported at once, one per line.
#ifndef BPO_COMMON_CONFIG_H_
#define BPO_COMMON_CONFIG_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bpo/v1/config.pb.h"

namespace bpo {

struct ConfigOptions {
  // Check that every path in the config names an existing file or directory.
  // Off for configs written for another machine.
  bool check_files = true;
};

// Where a key was written: 1-based line and column.
struct SourcePosition {
  int line = 0;
  int column = 0;
};

// A parsed, resolved and validated run configuration.
struct RunConfigFile {
  bpo::v1::RunConfig config;
  // The file it came from ("<defaults>" for the built-in defaults).
  std::string source;
  // Key path ("lora.rank", "lora.target_modules[1]") -> where it was written.
  std::map<std::string, SourcePosition> positions;
};

// Reads, resolves and validates a YAML config file. Relative paths in the
// file are resolved against the file's directory.
// NOT_FOUND: the file cannot be read; INVALID_ARGUMENT: anything wrong inside.
absl::StatusOr<RunConfigFile> LoadRunConfig(const std::string& path,
                                            const ConfigOptions& options = {});

// Same, from YAML text. `source` names it in errors; `base_dir` resolves
// relative paths.
absl::StatusOr<RunConfigFile> ParseRunConfig(absl::string_view yaml, absl::string_view source,
                                             absl::string_view base_dir,
                                             const ConfigOptions& options = {});

// The built-in defaults, resolved (what a run without a config file uses).
RunConfigFile DefaultRunConfig();

// Derived values of a resolved config.
int32_t StepsPerPhase(const bpo::v1::RunConfig& config);  // K = T / F
int64_t PairsPerPhase(const bpo::v1::RunConfig& config);  // M

// run_id rules: 1-64 characters of [A-Za-z0-9._-], not starting with '.' or
// '-' (so never "." or ".."). INVALID_ARGUMENT naming run_id otherwise.
absl::Status CheckRunId(absl::string_view run_id);

// The run directory output_dir/run_id, or a path below it when `relative` is
// given ("coordinator.db", "logs/learner.log"). Lexically normalized;
// INVALID_ARGUMENT when run_id is not a safe name or the result would leave
// output_dir/run_id (an absolute `relative`, or one with "..").
absl::StatusOr<std::string> RunPath(const bpo::v1::RunConfig& config,
                                    absl::string_view relative = "");

// The effective config as YAML: every field, defaults included, in schema
// order. ParseRunConfig(FormatRunConfigYaml(c)) gives back c.
std::string FormatRunConfigYaml(const bpo::v1::RunConfig& config);

}  // namespace bpo

#endif  // BPO_COMMON_CONFIG_H_
