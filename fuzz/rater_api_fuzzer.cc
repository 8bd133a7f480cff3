// libFuzzer target: the human-annotation service's request decoding
// (annotator/human_api.h: the JSON bodies of /api/login, /api/label and
// /api/logout, the ?session= query of /api/next and /api/stats), the choice
// names of /api/label and the rater token file. The input is used as each of
// them in turn.
//
// Beyond "no crash": decoded fields written back as JSON decode to the same
// fields; any string percent-encoded into a query decodes back to itself; a
// token file that loads names only valid raters with non-empty tokens; every
// refusal is INVALID_ARGUMENT.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "annotator/human_api.h"
#include "annotator/human_rater.h"
#include "annotator/human_tokens.h"
#include "fuzz/temp_file.h"
#include "nlohmann/json.hpp"

namespace {

using bpo::annotator::ParseFields;
using bpo::annotator::QueryParam;

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "rater_api_fuzzer: %s\n", why.c_str());
  std::abort();
}

void CheckBody(const std::string& body, const std::vector<std::string>& fields) {
  auto parsed = ParseFields(body, fields);
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail(parsed.status().ToString());
    }
    return;
  }
  if (parsed->size() != fields.size()) Fail("a field missing from a parsed body");
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : *parsed) j[key] = value;
  auto again = ParseFields(j.dump(), fields);
  if (!again.ok() || *again != *parsed) Fail("fields written as JSON decode differently");
  if (auto choice = parsed->find("choice"); choice != parsed->end()) {
    auto side = bpo::annotator::ParseSide(choice->second);
    if (!side.ok() && side.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail(side.status().ToString());
    }
  }
}

std::string PercentEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) absl::StrAppendFormat(&out, "%%%02X", c);
  return out;
}

void CheckQuery(const std::string& input) {
  const std::string raw = QueryParam(input, "session");
  if (raw.size() > input.size()) Fail("a decoded query value longer than the query");
  // Safe characters as they are, the rest percent-encoded; a later repeat of
  // the key must not win.
  const std::string query = "x=1&session=" + PercentEncode(input) + "&session=other";
  if (QueryParam(query, "session") != input) Fail("percent-encoded value decodes differently");
}

void CheckTokens(const uint8_t* data, size_t size) {
  const std::string path = bpo::fuzz::WriteTempFile(data, size, ".tokens");
  auto tokens = bpo::annotator::LoadRaterTokens(path);
  if (!tokens.ok()) {
    if (tokens.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail(tokens.status().ToString());
    }
    return;
  }
  if (tokens->empty()) Fail("a token file that loads with no rater");
  for (const auto& [name, token] : *tokens) {
    if (!bpo::annotator::IsValidRaterName(name)) Fail("an invalid rater name loaded: " + name);
    if (token.empty()) Fail("an empty token loaded for " + name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  CheckBody(input, {"rater", "token"});                // POST /api/login
  CheckBody(input, {"session", "pair_id", "choice"});  // POST /api/label
  CheckBody(input, {"session"});                       // POST /api/logout
  CheckQuery(input);                                   // GET /api/next, /api/stats
  CheckTokens(data, size);                             // --tokens file
  return 0;
}
