// Request decoding of the human-annotation JSON API (annotator/human_service.h):
// the JSON bodies of POST /api/login and /api/label. Pure functions of the
// request text, so they can be fuzzed on their own (fuzz/rater_api_fuzzer.cc).
#ifndef BPO_ANNOTATOR_HUMAN_API_H_
#define BPO_ANNOTATOR_HUMAN_API_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bpo::annotator {

// Parses a JSON object whose `fields` are all strings (other members are
// ignored). INVALID_ARGUMENT for malformed JSON, a non-object, or a field
// missing or not a string.
absl::StatusOr<std::map<std::string, std::string>> ParseFields(
    const std::string& body, const std::vector<std::string>& fields);

}  // namespace bpo::annotator

#endif  // BPO_ANNOTATOR_HUMAN_API_H_
