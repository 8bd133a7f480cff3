// `bpo eval` as a library: a policy (with adapters or a run's behavior
// snapshot) decodes the test prompts greedily; its outputs are compared with
// the references, or head to head with the same model under other adapters,
// by the task's oracle and/or a reward model. Optionally also sampled outputs
// (the whole distribution, not just its mode). Writes a summary table to
// `log` and returns the typed result (eval_result.h) with every item.
#ifndef BPO_EVAL_POLICY_EVAL_H_
#define BPO_EVAL_POLICY_EVAL_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "eval/eval_result.h"
#include "model/policy.h"

namespace bpo::eval {

struct PolicyEvalOptions {
  std::string model;                  // HF causal-LM directory
  std::vector<std::string> adapters;  // PEFT adapter directories, or
  std::string snapshot;               // a behavior snapshot file a run published
  std::vector<std::string> against;   // head to head against these adapters; empty:
                                      // against the references
  model::MergeMode merge_mode = model::MergeMode::kPeftLinear;
  model::LoadOptions load;
  // Test prompts with references: JSONL ({"prompt", "reference"}) or a TL;DR
  // CSV (.csv, .csv.gz); the first `limit` (0: all).
  std::string test_prompts;
  int64_t limit = 0;
  // Judges: the task's oracle and/or the reward model (at least one).
  std::string task;
  std::string reward_model;
  int64_t rm_max_length = 640;
  int64_t max_new_tokens = 128;
  int64_t batch_size = 16;
  int64_t samples = 0;  // sampled outputs per prompt too (not head to head)
  // Recorded in the result, for bpo aggregate.
  std::string method;
  int64_t run_seed = 0;  // also seeds the sampled outputs
};

absl::StatusOr<EvalResult> EvaluatePolicy(const PolicyEvalOptions& options, std::ostream& log);

// A behavior snapshot file as the policy's adapter (the policy has none).
absl::Status UseSnapshotAsAdapter(const std::string& path, model::Policy& policy);

}  // namespace bpo::eval

#endif  // BPO_EVAL_POLICY_EVAL_H_
