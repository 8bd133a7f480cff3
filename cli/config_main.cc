// bpo config check FILE / bpo config defaults
#include <algorithm>
#include <iostream>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "common/config.h"
#include "coordinator/run_plan.h"
#include "google/protobuf/util/json_util.h"

ABSL_FLAG(bool, skip_file_checks, false,
          "Do not check that the files and directories the config names exist "
          "(for a config written for another machine).");
ABSL_FLAG(std::string, format, "yaml", "Output format of the effective config: yaml or json.");

namespace bpo::cli {
namespace {

int PrintEffective(const RunConfigFile& file, bool with_plan) {
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format == "json") {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(file.config, &json, options).ok()) {
      std::cerr << "bpo config: cannot print the config as JSON\n";
      return kExitFailure;
    }
    std::cout << json;
    return kExitOk;
  }
  if (format != "yaml") {
    std::cerr << "bpo config: --format must be yaml or json, got '" << format << "'\n";
    return kExitUsage;
  }
  std::cout << "# effective config of " << file.source << "\n" << FormatRunConfigYaml(file.config);
  if (with_plan) {
    auto plan = coordinator::MakeRunPlan(file.config);
    if (plan.ok()) {
      std::string text = coordinator::FormatRunPlan(*plan);
      std::cout << "\n# schedule (Algorithm 1)\n";
      for (size_t start = 0; start < text.size();) {
        const size_t end = text.find('\n', start);
        std::cout << "# " << text.substr(start, end - start) << "\n";
        start = end == std::string::npos ? text.size() : end + 1;
      }
    }
  }
  return kExitOk;
}

int RunCheck(const std::vector<std::string>& args) {
  ConfigOptions options;
  options.check_files = !absl::GetFlag(FLAGS_skip_file_checks);
  auto file = LoadRunConfig(args[0], options);
  if (!file.ok()) {
    std::cerr << file.status().message() << "\n";
    const size_t n =
        std::count(file.status().message().begin(), file.status().message().end(), '\n') + 1;
    std::cerr << "bpo config check: " << args[0] << ": " << n << (n == 1 ? " error" : " errors")
              << "\n";
    return kExitFailure;
  }
  return PrintEffective(*file, /*with_plan=*/true);
}

int RunDefaults(const std::vector<std::string>&) {
  return PrintEffective(DefaultRunConfig(), /*with_plan=*/false);
}

}  // namespace

const Command& ConfigCheckCommand() {
  static const Command kCommand{
      "config check",
      "Validate a run config (YAML) and print the effective config and schedule.",
      "bpo config check FILE [--skip_file_checks] [--format=yaml|json]",
      __FILE__,
      1,
      1,
      &RunCheck};
  return kCommand;
}

const Command& ConfigDefaultsCommand() {
  static const Command kCommand{"config defaults",
                                "Print the built-in default config (a starting point for a file).",
                                "bpo config defaults [--format=yaml|json]",
                                __FILE__,
                                0,
                                0,
                                &RunDefaults};
  return kCommand;
}

}  // namespace bpo::cli
