// libFuzzer target: preference pairs and scored responses as JSONL
// (data::ReadJsonlStringFields, the reader of `bpo score --pairs` and, through
// ForEachJsonlObject, of the reward-model and DPO pair files). Any bytes give
// rows or INVALID_ARGUMENT / DATA_LOSS naming the file; rows that come back
// written as JSONL again read back to the same rows.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "data/prompts.h"
#include "fuzz/temp_file.h"
#include "nlohmann/json.hpp"

namespace {

using Rows = std::vector<std::vector<std::string>>;

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "pairs_jsonl_fuzzer: %s\n", why.c_str());
  std::abort();
}

void Check(const std::string& path, const std::vector<std::string>& keys) {
  absl::StatusOr<Rows> rows = bpo::data::ReadJsonlStringFields(path, keys);
  if (!rows.ok()) {
    const absl::StatusCode code = rows.status().code();
    if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kDataLoss) {
      Fail(rows.status().ToString());
    }
    if (!absl::StartsWith(rows.status().message(), path)) {
      Fail("the error does not name the file: " + rows.status().ToString());
    }
    return;
  }
  std::string jsonl;
  for (const std::vector<std::string>& row : *rows) {
    if (row.size() != keys.size()) Fail("a row without every key");
    nlohmann::json j = nlohmann::json::object();
    for (size_t i = 0; i < keys.size(); ++i) j[keys[i]] = row[i];
    jsonl += j.dump() + "\n";
  }
  if (rows->empty()) return;
  const std::string again_path = bpo::fuzz::WriteTempFile(
      reinterpret_cast<const uint8_t*>(jsonl.data()), jsonl.size(), ".again.jsonl");
  absl::StatusOr<Rows> again = bpo::data::ReadJsonlStringFields(again_path, keys);
  if (!again.ok()) Fail("rows written again do not read: " + again.status().ToString());
  if (*again != *rows) Fail("rows written again read back different");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = bpo::fuzz::WriteTempFile(data, size, ".jsonl");
  Check(path, {"prompt", "chosen", "rejected"});
  Check(path, {"prompt", "response"});
  return 0;
}
