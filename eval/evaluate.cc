#include "eval/evaluate.h"

#include "absl/strings/str_cat.h"
#include "eval/stats.h"
#include "model/generate.h"

namespace bpo::eval {

namespace {

// samples == 0: greedy, one output per prompt.
absl::StatusOr<std::vector<std::string>> Outputs(const model::CausalLm& model,
                                                 const model::Tokenizer& tok,
                                                 const model::LinearAdapter* adapter,
                                                 const std::vector<std::string>& prompts,
                                                 const GenerateOptions& o, int64_t samples,
                                                 uint64_t seed) {
  absl::StatusOr<int64_t> max_prompt =
      model::PromptBudget(model.config(), o.max_prompt_tokens, o.max_new_tokens);
  if (!max_prompt.ok()) return max_prompt.status();
  std::vector<std::string> out;
  const size_t batch = static_cast<size_t>(std::max<int64_t>(1, o.batch_size));
  for (size_t start = 0; start < prompts.size(); start += batch) {
    const size_t end = std::min(prompts.size(), start + batch);
    std::vector<std::vector<int64_t>> ids;
    for (size_t i = start; i < end; ++i) {
      ids.push_back(model::KeepPromptTail(tok.Encode(prompts[i], /*add_bos=*/true), *max_prompt));
    }
    const int64_t n = static_cast<int64_t>(ids.size());
    const model::LeftPadded batch = model::LeftPad(ids, tok.pad_id());
    model::GenerateOptions g;
    g.max_new_tokens = o.max_new_tokens;
    g.greedy = samples == 0;
    g.samples_per_prompt = std::max<int64_t>(1, samples);
    g.top_k = 0;
    g.temperature = 1.0;
    g.seed = seed + start;
    g.pad_token_id = tok.pad_id();
    if (tok.eos_id() >= 0) g.eos_token_ids = {tok.eos_id()};
    const at::Device device = model.options().device();
    auto gen = model::Generate(model, batch.ids.to(device), batch.mask.to(device), g, adapter);
    if (!gen.ok()) return gen.status();
    const at::Tensor tokens = gen->tokens.cpu().contiguous(), lengths = gen->lengths.cpu();
    for (int64_t r = 0; r < n * g.samples_per_prompt; ++r) {
      const int64_t len = lengths[r].item<int64_t>();
      std::vector<int64_t> t(tokens[r].data_ptr<int64_t>(), tokens[r].data_ptr<int64_t>() + len);
      out.push_back(tok.Decode(t));
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> GreedyOutputs(const model::CausalLm& model,
                                                       const model::Tokenizer& tok,
                                                       const model::LinearAdapter* adapter,
                                                       const std::vector<std::string>& prompts,
                                                       const GenerateOptions& o) {
  return Outputs(model, tok, adapter, prompts, o, 0, 0);
}

absl::StatusOr<std::vector<std::string>> SampledOutputs(const model::CausalLm& model,
                                                        const model::Tokenizer& tok,
                                                        const model::LinearAdapter* adapter,
                                                        const std::vector<std::string>& prompts,
                                                        const GenerateOptions& o, int64_t samples,
                                                        uint64_t seed) {
  if (samples < 1) return absl::InvalidArgumentError("SampledOutputs: samples must be >= 1");
  return Outputs(model, tok, adapter, prompts, o, samples, seed);
}

absl::StatusOr<std::vector<double>> Score(const Judge& judge,
                                          const std::vector<std::string>& prompts,
                                          const std::vector<std::string>& responses) {
  std::vector<double> out;
  if (judge.task != nullptr) {
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto s = judge.task->Oracle(prompts[i], responses[i]);
      if (!s.ok())
        return absl::InvalidArgumentError(absl::StrCat("prompt ", i, ": ", s.status().message()));
      out.push_back(*s);
    }
    return out;
  }
  if (judge.reward == nullptr)
    return absl::InvalidArgumentError("a judge needs a task or a reward model");
  std::vector<std::pair<std::string, std::string>> pairs;
  for (size_t i = 0; i < prompts.size(); ++i) pairs.emplace_back(prompts[i], responses[i]);
  return model::ScorePairs(*judge.reward, pairs, judge.rm_max_length);
}

absl::StatusOr<std::vector<JudgeResult>> Compare(const std::vector<Judge>& judges,
                                                 const std::vector<std::string>& prompts,
                                                 const std::vector<std::string>& outputs,
                                                 const std::vector<std::string>& others) {
  for (size_t i = 0; i < others.size(); ++i) {
    if (others[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " has no reference response"));
    }
  }
  std::vector<JudgeResult> results;
  for (const Judge& j : judges) {
    JudgeResult r;
    r.judge = j.name;
    auto a = Score(j, prompts, outputs);
    if (!a.ok()) return a.status();
    auto b = Score(j, prompts, others);
    if (!b.ok()) return b.status();
    r.output_scores = std::move(*a);
    r.other_scores = std::move(*b);
    r.win_rate = WinRate(r.output_scores, r.other_scores);
    std::vector<double> diff;
    for (size_t i = 0; i < r.output_scores.size(); ++i)
      diff.push_back(r.output_scores[i] - r.other_scores[i]);
    r.mean_reward_diff = Mean(diff);
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace bpo::eval
