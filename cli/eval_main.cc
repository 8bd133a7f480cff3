// bpo eval: flags for eval::EvaluatePolicy (eval/policy_eval.h).
#include <iostream>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "eval/policy_eval.h"

ABSL_FLAG(std::string, test_prompts, "",
          "Test prompts with references: JSONL ({\"prompt\", \"reference\"}, as `bpo task "
          "generate` writes test.jsonl) or a TL;DR CSV (.csv: query, reference_responses).");
ABSL_FLAG(std::string, against_adapter, "",
          "Head to head against the policy with these adapters (comma-separated; empty = against "
          "the references).");
ABSL_FLAG(std::string, json_out, "", "Write the full result (per prompt too) as JSON here.");
ABSL_FLAG(int64_t, limit, 0, "Only the first N test prompts (0: all).");
ABSL_FLAG(std::string, method, "", "The method's name in the result, for bpo aggregate.");
ABSL_FLAG(int64_t, run_seed, 0, "The run's seed in the result, for bpo aggregate.");
ABSL_FLAG(std::string, snapshot, "",
          "A behavior snapshot file a run published (<run>/snapshots/snapshot-N.safetensors) as "
          "the adapter, instead of --adapter.");
ABSL_FLAG(int64_t, eval_samples, 0,
          "Also draw this many samples per prompt (temperature 1) and report their win rate and "
          "mean reward difference against the references: the whole distribution, not just its "
          "mode.");

namespace bpo::cli {
namespace {

int RunEval(const std::vector<std::string>&) {
  eval::PolicyEvalOptions o;
  o.model = absl::GetFlag(FLAGS_model);
  o.adapters = AdaptersFromFlag(absl::GetFlag(FLAGS_adapter));
  o.snapshot = absl::GetFlag(FLAGS_snapshot);
  o.against = AdaptersFromFlag(absl::GetFlag(FLAGS_against_adapter));
  auto merge_mode = MergeModeFromFlags();
  if (!merge_mode.ok()) return Fail("eval", merge_mode.status());
  o.merge_mode = *merge_mode;
  auto load = LoadOptionsFromFlags();
  if (!load.ok()) return Fail("eval", load.status());
  o.load = *load;
  o.test_prompts = absl::GetFlag(FLAGS_test_prompts);
  o.limit = absl::GetFlag(FLAGS_limit);
  o.task = absl::GetFlag(FLAGS_task);
  o.reward_model = absl::GetFlag(FLAGS_reward_model);
  o.rm_max_length = absl::GetFlag(FLAGS_max_length);
  o.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.samples = absl::GetFlag(FLAGS_eval_samples);
  o.method = absl::GetFlag(FLAGS_method);
  o.run_seed = absl::GetFlag(FLAGS_run_seed);
  auto result = eval::EvaluatePolicy(o, std::cout);
  if (!result.ok()) return Fail("eval", result.status());
  const std::string json_out = absl::GetFlag(FLAGS_json_out);
  if (json_out.empty()) {
    result->items.reset();  // per prompt only in the file
  } else if (absl::Status s = eval::WriteEvalResult(*result, json_out); !s.ok()) {
    return Fail("eval", s);
  }
  if (absl::GetFlag(FLAGS_json)) std::cout << eval::EvalResultToJson(*result).dump() << "\n";
  return kExitOk;
}

}  // namespace

const Command& EvalCommand() {
  static const Command kCommand{
      "eval",
      "Win rate of a policy's greedy outputs against references (or another policy).",
      "bpo eval --model DIR [--adapter DIR] --test_prompts FILE.jsonl --task T | --reward_model "
      "DIR "
      "[--against_adapter DIR] [--json_out FILE]",
      __FILE__,
      0,
      0,
      &RunEval,
      {},
      {"model", "adapter", "merge_mode", "max_new_tokens", "max_length", "batch_size", "dtype",
       "device", "json", "task", "reward_model"}};
  return kCommand;
}

}  // namespace bpo::cli
