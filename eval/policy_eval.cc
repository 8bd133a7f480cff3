#include "eval/policy_eval.h"

#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "data/prompts.h"
#include "eval/evaluate.h"
#include "snapshot/snapshot.h"
#include "tasks/synthetic.h"

namespace bpo::eval {
namespace {

// The test prompts, the first `limit`; every prompt needs a reference unless
// the policy is compared head to head.
absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadTestPrompts(const PolicyEvalOptions& o) {
  const std::string& path = o.test_prompts;
  if (path.empty()) return absl::InvalidArgumentError("--test_prompts is required");
  auto test = absl::EndsWith(path, ".csv") || absl::EndsWith(path, ".csv.gz")
                  ? data::ReadTldrCsv(path)
                  : data::ReadJsonlPrompts(path);
  if (!test.ok()) return test.status();
  if (o.limit > 0 && static_cast<int64_t>(test->size()) > o.limit) test->resize(o.limit);
  for (const auto& p : *test) {
    if (o.against.empty() && p.reference().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": prompt '", p.prompt_id(), "' has no \"reference\""));
    }
  }
  return test;
}

// The judges and what they own.
struct Judges {
  std::unique_ptr<tasks::Task> task;
  std::optional<model::RewardModel> rm;
  std::vector<Judge> list;
};

absl::Status LoadJudges(const PolicyEvalOptions& o, Judges& judges) {
  if (!o.task.empty()) {
    auto t = tasks::MakeTask(o.task);
    if (!t.ok()) return t.status();
    judges.task = std::move(*t);
    judges.list.push_back({"oracle:" + judges.task->name(), judges.task.get(), nullptr});
  }
  if (!o.reward_model.empty()) {
    auto r = model::LoadRewardModel(o.reward_model, o.load);
    if (!r.ok()) return r.status();
    judges.rm = std::move(*r);
    judges.list.push_back({"rm:" + o.reward_model, nullptr, &*judges.rm, o.rm_max_length});
  }
  if (judges.list.empty()) {
    return absl::InvalidArgumentError("give --task (its oracle) and/or --reward_model");
  }
  return absl::OkStatus();
}

absl::StatusOr<model::Policy> LoadPolicyWith(const PolicyEvalOptions& o,
                                             const std::vector<std::string>& adapters) {
  model::PolicyOptions po;
  po.load = o.load;
  po.adapters = adapters;
  po.merge_mode = o.merge_mode;
  return model::LoadPolicy(o.model, po);
}

// `samples` temperature-1 samples per prompt, scored by every judge against
// the references' scores in `results`; printed and added to `out`.
absl::Status AddSampleWinRates(const PolicyEvalOptions& o, const model::Policy& policy,
                               const std::vector<std::string>& prompts, const GenerateOptions& go,
                               const std::vector<Judge>& judges,
                               const std::vector<JudgeResult>& results, EvalResult& out,
                               std::ostream& log) {
  const int64_t samples = o.samples;
  auto sampled = SampledOutputs(*policy.model, *policy.tokenizer, policy.adapter(), prompts, go,
                                samples, static_cast<uint64_t>(o.run_seed));
  if (!sampled.ok()) return sampled.status();
  std::vector<std::string> sample_prompts;
  for (const auto& p : prompts) {
    for (int64_t k = 0; k < samples; ++k) sample_prompts.push_back(p);
  }
  log << absl::StrFormat("  %d samples per prompt (temperature 1):\n", samples);
  for (size_t j = 0; j < judges.size(); ++j) {
    auto scores = Score(judges[j], sample_prompts, *sampled);
    if (!scores.ok()) return scores.status();
    double wins = 0, diff = 0;
    for (size_t i = 0; i < scores->size(); ++i) {
      const double ref = results[j].other_scores[i / samples];
      wins += (*scores)[i] > ref ? 1 : 0;
      diff += (*scores)[i] - ref;
    }
    const double n = static_cast<double>(scores->size());
    log << absl::StrFormat("  %-40s %10.3f %18.4f\n", judges[j].name, wins / n, diff / n);
    out.judges[judges[j].name].sample_win_rate = wins / n;
    out.judges[judges[j].name].sample_mean_reward_diff = diff / n;
  }
  out.samples_per_prompt = samples;
  return absl::OkStatus();
}

}  // namespace

absl::Status UseSnapshotAsAdapter(const std::string& path, model::Policy& policy) {
  auto bytes = ReadWholeFile(path);
  if (!bytes.ok()) return bytes.status();
  auto decoded = snapshot::DecodeSnapshot(*bytes, *policy.model, path);
  if (!decoded.ok()) return decoded.status();
  policy.merged = std::make_unique<model::MergedLora>(std::move(decoded->merged));
  return absl::OkStatus();
}

absl::StatusOr<EvalResult> EvaluatePolicy(const PolicyEvalOptions& o, std::ostream& log) {
  if (!o.snapshot.empty() && !o.adapters.empty()) {
    return absl::InvalidArgumentError("give --adapter or --snapshot, not both");
  }
  auto test = ReadTestPrompts(o);
  if (!test.ok()) return test.status();
  std::vector<std::string> prompts, others;
  for (const auto& p : *test) {
    prompts.push_back(p.text());
    others.push_back(p.reference());
  }
  Judges judges;
  BPO_RETURN_IF_ERROR(LoadJudges(o, judges));
  if (o.model.empty()) return absl::InvalidArgumentError("--model is required");
  auto policy = LoadPolicyWith(o, o.adapters);
  if (!policy.ok()) return policy.status();
  if (!o.snapshot.empty()) BPO_RETURN_IF_ERROR(UseSnapshotAsAdapter(o.snapshot, *policy));
  GenerateOptions go;
  go.max_new_tokens = o.max_new_tokens;
  go.batch_size = o.batch_size;
  auto outputs = GreedyOutputs(*policy->model, *policy->tokenizer, policy->adapter(), prompts, go);
  if (!outputs.ok()) return outputs.status();
  const bool head_to_head = !o.against.empty();
  if (head_to_head) {
    auto theirs = LoadPolicyWith(o, o.against);
    if (!theirs.ok()) return theirs.status();
    auto their_outputs =
        GreedyOutputs(*theirs->model, *theirs->tokenizer, theirs->adapter(), prompts, go);
    if (!their_outputs.ok()) return their_outputs.status();
    others = std::move(*their_outputs);
  }
  auto results = Compare(judges.list, prompts, *outputs, others);
  if (!results.ok()) return results.status();

  EvalResult out;
  out.model = o.model;
  out.adapter = o.snapshot.empty() ? absl::StrJoin(o.adapters, ",") : o.snapshot;
  out.against = head_to_head ? absl::StrJoin(o.against, ",") : std::string("references");
  out.test_prompts = o.test_prompts;
  out.task = o.task.empty() ? o.test_prompts : o.task;
  out.method = o.method;
  out.seed = o.run_seed;
  out.n = static_cast<int64_t>(prompts.size());
  out.max_new_tokens = go.max_new_tokens;
  const std::string adapters = absl::StrJoin(o.adapters, ",");
  log << absl::StrFormat("eval: %s%s on %d test prompts (greedy, %d new tokens) against %s\n",
                         o.model, adapters.empty() ? "" : " + " + adapters, prompts.size(),
                         go.max_new_tokens, head_to_head ? "the other policy" : "the references")
      << absl::StrFormat("  %-40s %10s %18s\n", "judge", "win rate", "mean reward diff");
  for (const auto& r : *results) {
    log << absl::StrFormat("  %-40s %10.3f %18.4f\n", r.judge, r.win_rate, r.mean_reward_diff);
    out.judges[r.judge].win_rate = r.win_rate;
    out.judges[r.judge].mean_reward_diff = r.mean_reward_diff;
  }
  if (o.samples > 0 && !head_to_head) {
    BPO_RETURN_IF_ERROR(
        AddSampleWinRates(o, *policy, prompts, go, judges.list, *results, out, log));
  }
  out.items.emplace();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EvalItem item{(*test)[i].prompt_id(), (*outputs)[i], others[i], {}};
    for (const auto& r : *results) item.scores[r.judge] = {r.output_scores[i], r.other_scores[i]};
    out.items->push_back(std::move(item));
  }
  return out;
}

}  // namespace bpo::eval
