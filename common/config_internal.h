// Pieces of config.cc shared with its tests; not part of the public API.
#ifndef BPO_COMMON_CONFIG_INTERNAL_H_
#define BPO_COMMON_CONFIG_INTERNAL_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "bpo/v1/config.pb.h"
#include "common/config.h"

namespace bpo::config_internal {

// Collects every error of one file, each as "source:line:col: path: reason".
class ErrorList {
 public:
  ErrorList(std::string source, const std::map<std::string, SourcePosition>* positions)
      : source_(std::move(source)), positions_(positions) {}

  // At the position where `path` was written, or without one when it was not
  // (a default or derived value).
  void Add(absl::string_view path, absl::string_view reason);
  void AddAt(SourcePosition pos, absl::string_view path, absl::string_view reason);

  bool empty() const { return errors_.empty(); }
  // INVALID_ARGUMENT with one error per line; OK when empty.
  absl::Status ToStatus() const;

 private:
  std::string source_;
  const std::map<std::string, SourcePosition>* positions_;
  std::vector<std::string> errors_;
};

// Fills `config` from YAML text: syntax, unknown keys, duplicate keys and
// wrong types. Records where each key was written in `positions`.
void ParseYaml(absl::string_view yaml, bpo::v1::RunConfig* config,
               std::map<std::string, SourcePosition>* positions, ErrorList* errors);

// Fills derived and defaulted values (run_id, M, target modules, seeds) and
// makes relative paths absolute against `base_dir`.
void Resolve(absl::string_view source, absl::string_view base_dir, bpo::v1::RunConfig* config);

// Checks ranges and consistency between keys, and that named files exist.
void Validate(const bpo::v1::RunConfig& config, const ConfigOptions& options, ErrorList* errors);

// Closest candidate within edit distance 2, or "" (for "did you mean").
std::string ClosestName(absl::string_view name, const std::vector<std::string>& candidates);

}  // namespace bpo::config_internal

#endif  // BPO_COMMON_CONFIG_INTERNAL_H_
