// libFuzzer target: the human-annotation service's request decoding
// (annotator/human_api.h: the JSON bodies of /api/login and /api/label), the
// choice names of /api/label and the raters file. The input is used as each
// of them in turn.
//
// Beyond "no crash": decoded fields written back as JSON decode to the same
// fields; a raters file that loads names only valid raters, each with a
// PBKDF2 hash of at least the minimum rounds; every refusal is
// INVALID_ARGUMENT.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "annotator/human_api.h"
#include "annotator/human_rater.h"
#include "annotator/human_tokens.h"
#include "fuzz/temp_file.h"
#include "nlohmann/json.hpp"

namespace {

using bpo::annotator::ParseFields;

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

void CheckRaters(const uint8_t* data, size_t size) {
  const std::string path = bpo::fuzz::WriteTempFile(data, size, ".raters");
  auto raters = bpo::annotator::LoadRaters(path);
  if (!raters.ok()) {
    if (raters.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail(raters.status().ToString());
    }
    return;
  }
  for (const auto& [name, hash] : *raters) {
    if (!bpo::annotator::IsValidRaterName(name)) Fail("an invalid rater name loaded: " + name);
    if (hash.iterations < bpo::annotator::kSecretHashIterationsMin || hash.hash.size() != 32) {
      Fail("a weak or malformed hash loaded for " + name);
    }
    auto again = bpo::annotator::ParseSecretHash(bpo::annotator::FormatSecretHash(hash));
    if (!again.ok() || again->salt != hash.salt || again->hash != hash.hash) {
      Fail("a hash formatted and parsed back differs for " + name);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  CheckBody(input, {"rater", "secret"});    // POST /api/login
  CheckBody(input, {"pair_id", "choice"});  // POST /api/label
  CheckRaters(data, size);                  // --raters file
  return 0;
}
