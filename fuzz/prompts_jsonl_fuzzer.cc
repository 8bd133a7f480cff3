// libFuzzer target: the prompt-set readers of data/prompts.h (JSONL prompts,
// HH-RLHF JSONL, TL;DR CSV; gzip-compressed inputs too, as the readers
// decompress whatever starts with gzip's magic). Any bytes give prompts or
// INVALID_ARGUMENT / DATA_LOSS naming the file; the prompts that come back
// have a non-empty text, and no more of them than the input has lines.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "data/prompts.h"
#include "fuzz/temp_file.h"

namespace {

[[noreturn]] void Fail(const char* reader, const std::string& why) {
  std::fprintf(stderr, "prompts_jsonl_fuzzer: %s: %s\n", reader, why.c_str());
  std::abort();
}

void Check(const char* reader, const std::string& path, size_t lines, bool gzipped,
           const absl::StatusOr<std::vector<bpo::v1::Prompt>>& prompts) {
  if (!prompts.ok()) {
    const absl::StatusCode code = prompts.status().code();
    if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kDataLoss) {
      Fail(reader, prompts.status().ToString());
    }
    if (!absl::StartsWith(prompts.status().message(), path)) {
      Fail(reader, "the error does not name the file: " + prompts.status().ToString());
    }
    return;
  }
  if (prompts->empty()) Fail(reader, "OK with no prompts");
  if (!gzipped && prompts->size() > lines) Fail(reader, "more prompts than lines");
  for (const bpo::v1::Prompt& p : *prompts) {
    if (p.text().empty()) Fail(reader, "a prompt without text");
    if (p.prompt_id().empty()) Fail(reader, "a prompt without an id");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = bpo::fuzz::WriteTempFile(data, size, ".jsonl");
  size_t lines = 1;
  for (size_t i = 0; i < size; ++i) lines += data[i] == '\n';
  const bool gzipped = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  Check("ReadJsonlPrompts", path, lines, gzipped, bpo::data::ReadJsonlPrompts(path));
  Check("ReadHarmlessJsonl", path, lines, gzipped, bpo::data::ReadHarmlessJsonl(path));
  Check("ReadTldrCsv", path, lines, gzipped, bpo::data::ReadTldrCsv(path));
  return 0;
}
