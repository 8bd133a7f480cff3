// bpo score (also bpo model score): reward-model scores of (prompt, response) pairs. Its flags are
// all in shared_flags.cc.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "data/prompts.h"
#include "model/reward.h"
#include "nlohmann/json.hpp"

namespace bpo::cli {
namespace {

int RunScore(const std::vector<std::string>&) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (!absl::GetFlag(FLAGS_pairs).empty()) {
    auto rows = data::ReadJsonlStringFields(absl::GetFlag(FLAGS_pairs), {"prompt", "response"});
    if (!rows.ok()) return Fail("score", rows.status());
    for (auto& r : *rows) pairs.emplace_back(std::move(r[0]), std::move(r[1]));
  } else if (!absl::GetFlag(FLAGS_response).empty()) {
    pairs.emplace_back(absl::GetFlag(FLAGS_prompt), absl::GetFlag(FLAGS_response));
  } else {
    return Fail("score", absl::InvalidArgumentError("give --prompt and --response, or --pairs"));
  }
  if (absl::GetFlag(FLAGS_reward_model).empty()) {
    return Fail("score", absl::InvalidArgumentError("--reward_model is required"));
  }
  auto load = LoadOptionsFromFlags();
  if (!load.ok()) return Fail("score", load.status());
  auto rm = model::LoadRewardModel(absl::GetFlag(FLAGS_reward_model), *load);
  if (!rm.ok()) return Fail("score", rm.status());
  auto scores = model::ScorePairs(*rm, pairs, absl::GetFlag(FLAGS_max_length),
                                  std::max<int64_t>(1, absl::GetFlag(FLAGS_batch_size)));
  if (!scores.ok()) return Fail("score", scores.status());
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (absl::GetFlag(FLAGS_json)) {
      std::cout << nlohmann::json{{"index", i}, {"reward", (*scores)[i]}}.dump() << "\n";
    } else {
      std::cout << absl::StrFormat("%.6f\n", (*scores)[i]);
    }
  }
  return kExitOk;
}

}  // namespace

const Command& ScoreCommand() {
  static const Command kCommand{
      "score",
      "Reward-model scores of (prompt, response) pairs.",
      "bpo score --reward_model DIR --prompt P --response R | --pairs FILE.jsonl [--json]",
      SharedFlagsFile(),
      0,
      0,
      &RunScore,
      {"prompt", "response", "max_length", "batch_size", "dtype", "device", "json", "pairs",
       "reward_model"},
      {},
      {"model score"}};
  return kCommand;
}

}  // namespace bpo::cli
