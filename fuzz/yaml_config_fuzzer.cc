// libFuzzer target: the YAML run config (common/config.h). Any bytes give a
// config or INVALID_ARGUMENT, never a crash; a config that parses formats
// (FormatRunConfigYaml) to YAML that parses back to the same message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "common/config.h"
#include "google/protobuf/util/message_differencer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  bpo::ConfigOptions options;
  options.check_files = false;  // the fuzzer's inputs name no real files
  auto parsed = bpo::ParseRunConfig(yaml, "fuzz.yaml", "/fuzz", options);
  if (std::getenv("BPO_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
  }
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument) {
      std::fprintf(stderr, "unexpected code: %s\n", parsed.status().ToString().c_str());
      std::abort();
    }
    return 0;
  }
  const std::string formatted = bpo::FormatRunConfigYaml(parsed->config);
  auto again = bpo::ParseRunConfig(formatted, "formatted.yaml", "/fuzz", options);
  if (!again.ok()) {
    std::fprintf(stderr, "formatted config does not parse: %s\n---\n%s---\n",
                 again.status().ToString().c_str(), formatted.c_str());
    std::abort();
  }
  // Formatting writes every field, defaults included: an unset field and
  // one set to its default are the same config.
  google::protobuf::util::MessageDifferencer diff;
  diff.set_message_field_comparison(google::protobuf::util::MessageDifferencer::EQUIVALENT);
  std::string report;
  diff.ReportDifferencesToString(&report);
  if (!diff.Compare(parsed->config, again->config)) {
    std::fprintf(stderr, "formatted config parses to another message:\n%s---\n%s---\n",
                 report.c_str(), formatted.c_str());
    std::abort();
  }
  return 0;
}
