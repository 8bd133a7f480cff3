// The result of one `bpo eval`, as a type: written once by `bpo eval
// --json_out` and read by `bpo quickstart`, `bpo reproduce` and `bpo
// aggregate` instead of each parsing the JSON by hand.
//
// On disk it is one JSON object (nlohmann's sorted keys, `dump(1)` plus a
// newline), the format bpo eval has always written:
//   {"adapter", "against", "judges": {NAME: {"win_rate", "mean_reward_diff",
//    ["sample_win_rate", "sample_mean_reward_diff"]}}, "max_new_tokens",
//    "method", "model", "n", ["samples_per_prompt"], "seed", "task",
//    "test_prompts", ["items": [{"id", "output", "other",
//    "scores": {NAME: [output score, other score]}}]]}
// Reading needs only "judges" with at least one judge and each judge's
// "win_rate" (hand-written results for `bpo aggregate` have just that); every
// other field is optional, but a field that is present must have its type.
#ifndef BPO_EVAL_EVAL_RESULT_H_
#define BPO_EVAL_EVAL_RESULT_H_

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace bpo::eval {

inline constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

// One judge's verdict on the policy's outputs against the others (the
// references, or another policy's outputs).
struct JudgeSummary {
  double win_rate = 0;                     // share of prompts where output > other
  double mean_reward_diff = kNotMeasured;  // mean of score(output) - score(other)
  // The same over temperature-1 samples (`--eval_samples`); NaN when not drawn.
  double sample_win_rate = kNotMeasured;
  double sample_mean_reward_diff = kNotMeasured;
};

// One test prompt's greedy output and the judges' scores.
struct EvalItem {
  std::string id, output, other;
  // judge name -> {score(output), score(other)}
  std::map<std::string, std::pair<double, double>> scores;
};

struct EvalResult {
  std::string model;         // the policy's HF directory
  std::string adapter;       // its adapter(s) or snapshot file; "" for none
  std::string against;       // "references", or the other policy's adapters
  std::string test_prompts;  // the test file
  std::string task;          // the task name (or the test file without --task)
  std::string method;        // `--method`, for bpo aggregate; may be ""
  int64_t seed = 0;          // `--run_seed`
  int64_t n = 0;             // test prompts
  int64_t max_new_tokens = 0;
  std::optional<int64_t> samples_per_prompt;   // with --eval_samples
  std::map<std::string, JudgeSummary> judges;  // by judge name: "oracle:tldr", "rm:<dir>"
  std::optional<std::vector<EvalItem>> items;  // per prompt, when written with --json_out

  // The judge `name`, or NOT_FOUND naming it and the judges there are.
  absl::StatusOr<JudgeSummary> Judge(absl::string_view name) const;
};

// The JSON object above; NaN judge fields and unset optionals are left out.
nlohmann::json EvalResultToJson(const EvalResult& result);

// Parses the object above. INVALID_ARGUMENT naming `source` and the field
// (e.g. "eval.json: judges.oracle:tldr.win_rate: expected a number"): not an
// object, no or empty "judges", a judge without "win_rate", a field of the
// wrong type.
absl::StatusOr<EvalResult> EvalResultFromJson(const nlohmann::json& j, absl::string_view source);

// Writes `result` to `path` (truncating it). PERMISSION_DENIED naming the
// path when it cannot be written.
absl::Status WriteEvalResult(const EvalResult& result, const std::string& path);

// Reads `path`. NOT_FOUND when it cannot be opened; INVALID_ARGUMENT naming
// the path when it is not JSON or not an eval result (see EvalResultFromJson).
absl::StatusOr<EvalResult> ReadEvalResult(const std::string& path);

}  // namespace bpo::eval

#endif  // BPO_EVAL_EVAL_RESULT_H_
