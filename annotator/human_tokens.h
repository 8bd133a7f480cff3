// Who may sign in to the human-annotation page: rater names and their tokens.
#ifndef BPO_ANNOTATOR_HUMAN_TOKENS_H_
#define BPO_ANNOTATOR_HUMAN_TOKENS_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace bpo::annotator {

// Reads "name token" lines ('#' comments and blank lines are ignored).
// INVALID_ARGUMENT names file:line for a malformed line, an invalid name or a
// duplicate; NOT_FOUND when the file cannot be read.
absl::StatusOr<std::map<std::string, std::string>> LoadRaterTokens(const std::string& path);

// True for 1-64 characters of [A-Za-z0-9._@-].
bool IsValidRaterName(const std::string& name);

}  // namespace bpo::annotator

#endif  // BPO_ANNOTATOR_HUMAN_TOKENS_H_
