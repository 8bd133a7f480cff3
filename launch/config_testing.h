// Test-only: run configs for the launch tests, written as top-level YAML
// sections, the "key: value" lines of `extra` replacing or adding sections.
#ifndef BPO_LAUNCH_CONFIG_TESTING_H_
#define BPO_LAUNCH_CONFIG_TESTING_H_

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "gtest/gtest.h"

namespace bpo::launch::testing {

// The config parsed as if read from `path` in `dir` (file checks off); a
// parse error is a test failure and gives an empty config.
inline bpo::v1::RunConfig ConfigFromSections(std::map<std::string, std::string> sections,
                                             const std::string& extra, const std::string& path,
                                             const std::string& dir) {
  for (absl::string_view line : absl::StrSplit(extra, '\n', absl::SkipEmpty())) {
    const size_t colon = line.find(':');
    sections[std::string(line.substr(0, colon))] = std::string(line.substr(colon + 1));
  }
  std::string yaml;
  for (const auto& [key, value] : sections) absl::StrAppend(&yaml, key, ": ", value, "\n");
  absl::StatusOr<RunConfigFile> file = ParseRunConfig(yaml, path, dir, {.check_files = false});
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? file->config : bpo::v1::RunConfig();
}

}  // namespace bpo::launch::testing

#endif  // BPO_LAUNCH_CONFIG_TESTING_H_
