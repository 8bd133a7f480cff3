#include "annotator/human_tokens.h"

#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bpo::annotator {

bool IsValidRaterName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-' && c != '@') return false;
  }
  return true;
}

absl::StatusOr<std::map<std::string, std::string>> LoadRaterTokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("rater token file '", path, "': cannot open"));
  std::map<std::string, std::string> tokens;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    std::vector<std::string> words =
        absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat(path, ":", number, ": ");
    if (words.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "expected 'name token', got ", words.size(), " fields"));
    }
    if (!IsValidRaterName(words[0])) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "rater name '", words[0], "' must be 1-64 characters of [A-Za-z0-9._@-]"));
    }
    if (!tokens.emplace(words[0], words[1]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "rater '", words[0], "' appears twice"));
    }
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("rater token file '", path, "' names no rater"));
  }
  return tokens;
}

}  // namespace bpo::annotator
