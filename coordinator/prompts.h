// Alignment prompts for the coordinator, read from the file data.prompts in
// data.format:
//   jsonl  one object a line: "prompt" (required), "reference", "id" (optional);
//   tldr   CSV with a header naming a `query` column (the prompt ending in
//          "TL;DR:") and optionally `reference_responses` (the human summary),
//          as in summarize-from-feedback's eval files.
// Errors name the file and the line.
#ifndef BPO_COORDINATOR_PROMPTS_H_
#define BPO_COORDINATOR_PROMPTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/common.pb.h"
#include "bpo/v1/config.pb.h"

namespace bpo::coordinator {

absl::StatusOr<std::vector<bpo::v1::Prompt>> LoadPrompts(const bpo::v1::DataConfig& data);

absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadJsonlPrompts(const std::string& path);
absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadTldrCsv(const std::string& path);

}  // namespace bpo::coordinator

#endif  // BPO_COORDINATOR_PROMPTS_H_
