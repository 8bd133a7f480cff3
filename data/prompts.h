// Prompt sets (alignment prompts for the coordinator, test prompts with
// reference responses for evaluation) read from files, by format:
//   jsonl     one object a line: "prompt" (required), "reference", "id"
//             (optional; a non-empty string or a number, else line-<n>);
//   tldr      CSV with a header naming a `query` column (the prompt ending in
//             "TL;DR:") and optionally `reference_responses` (the human
//             summary), as in summarize-from-feedback's eval files;
//   harmless  Anthropic HH-RLHF JSONL (optionally .gz) with "chosen" and
//             "rejected" transcripts ("\n\nHuman: ... \n\nAssistant: ..."):
//             the prompt is the dialogue up to the last "Assistant:", written
//             in the paper's "user: ... assistant:" format, and the reference
//             is the chosen last turn.
// Files ending in .gz are decompressed. Errors name the file and the line.
#ifndef BPO_DATA_PROMPTS_H_
#define BPO_DATA_PROMPTS_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/common.pb.h"
#include "bpo/v1/config.pb.h"
#include "nlohmann/json.hpp"

namespace bpo::data {

absl::StatusOr<std::vector<bpo::v1::Prompt>> LoadPrompts(const bpo::v1::DataConfig& data);

absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadJsonlPrompts(const std::string& path);
absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadTldrCsv(const std::string& path);
absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadHarmlessJsonl(const std::string& path);

// One HH-RLHF transcript split into (prompt in "user: ... assistant:" form,
// last assistant turn). INVALID_ARGUMENT when it has no "Assistant:" turn.
absl::StatusOr<std::pair<std::string, std::string>> SplitHhDialogue(const std::string& transcript);

// Calls `row` with (1-based line number, object) for every non-blank line of
// a JSONL file (.gz too). A line that is not a JSON object is
// INVALID_ARGUMENT "<path>:<line>: not a JSON object"; an error `row`
// returns comes back prefixed with "<path>:<line>: ".
absl::Status ForEachJsonlObject(const std::string& path,
                                const std::function<absl::Status(int, const nlohmann::json&)>& row);

// The string fields `keys` of every object of a JSONL file, in file order.
// INVALID_ARGUMENT "<path>:<line>: missing string field \"<key>\"".
absl::StatusOr<std::vector<std::vector<std::string>>> ReadJsonlStringFields(
    const std::string& path, const std::vector<std::string>& keys);

// The whole file, gunzipped when its name ends in .gz.
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

}  // namespace bpo::data

#endif  // BPO_DATA_PROMPTS_H_
