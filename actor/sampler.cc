#include "actor/sampler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/stable_hash.h"
#include "model/generate.h"

namespace bpo::actor {

SamplerOptions SamplerOptionsFrom(const bpo::v1::SamplingConfig& s, uint64_t seed) {
  SamplerOptions o;
  o.temperature = s.temperature();
  o.top_k = s.top_k();
  o.top_p = s.top_p();
  o.max_new_tokens = s.max_new_tokens();
  o.resample_identical = s.identical_pairs() == bpo::v1::SamplingConfig::RESAMPLE;
  o.max_resamples = s.max_resamples();
  o.seed = seed;
  return o;
}

namespace {

struct Sample {
  std::vector<int64_t> ids;
  std::vector<float> logprobs;
  bool finished = false;
};

// Two samples for each prompt (rows 2i, 2i+1).
absl::StatusOr<std::vector<Sample>> Generate2(const model::CausalLm& model,
                                              const model::Tokenizer& tok,
                                              const model::LinearAdapter* adapter,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              const SamplerOptions& o, uint64_t seed) {
  const model::LeftPadded batch = model::LeftPad(prompts, tok.pad_id());
  const at::Device device = model.options().device();
  model::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.temperature = o.temperature;
  g.top_k = o.top_k;
  g.top_p = o.top_p;
  g.samples_per_prompt = 2;
  g.seed = seed;
  g.pad_token_id = tok.pad_id();
  if (tok.eos_id() >= 0) g.eos_token_ids = {tok.eos_id()};
  absl::StatusOr<model::Generation> gen =
      model::Generate(model, batch.ids.to(device), batch.mask.to(device), g, adapter);
  if (!gen.ok()) return gen.status();
  const at::Tensor tokens = gen->tokens.cpu().contiguous();
  const at::Tensor logprobs = gen->logprobs.cpu().to(at::kFloat).contiguous();
  const at::Tensor lengths = gen->lengths.cpu(), finished = gen->finished.cpu();
  std::vector<Sample> out(tokens.size(0));
  for (int64_t row = 0; row < tokens.size(0); ++row) {
    const int64_t len = lengths[row].item<int64_t>();
    const int64_t* t = tokens[row].data_ptr<int64_t>();
    const float* l = logprobs[row].data_ptr<float>();
    out[row].ids.assign(t, t + len);
    out[row].logprobs.assign(l, l + len);
    out[row].finished = finished[row].item<bool>();
  }
  return out;
}

void Fill(bpo::v1::Response* r, const Sample& s, const model::Tokenizer& tok) {
  double sum = 0;
  for (size_t i = 0; i < s.ids.size(); ++i) {
    r->add_token_ids(static_cast<int32_t>(s.ids[i]));
    r->add_behavior_token_logprobs(s.logprobs[i]);
    sum += s.logprobs[i];
  }
  r->set_behavior_logprob(sum);
  r->set_finished(s.finished);
  r->set_text(tok.Decode(s.ids));
}

}  // namespace

absl::StatusOr<SampledBatch> SamplePairs(const model::CausalLm& model, const model::Tokenizer& tok,
                                         const model::LinearAdapter* adapter,
                                         const std::vector<bpo::v1::PromptWork>& work,
                                         uint64_t behavior_version, const SamplerOptions& o) {
  SampledBatch out;
  if (work.empty()) return out;
  absl::StatusOr<int64_t> max_prompt =
      model::PromptBudget(model.config(), o.max_prompt_tokens, o.max_new_tokens);
  if (!max_prompt.ok()) return max_prompt.status();
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& w : work) {
    prompts.push_back(
        model::KeepPromptTail(tok.Encode(w.prompt().text(), /*add_bos=*/true), *max_prompt));
  }
  // The lease's random state: the run's sampling seed, the lease's first
  // pair (the store hands out fixed groups) and the behavior version, so that
  // a group sampled again (after a kill) or by another actor gets the same
  // responses. Stable across processes (never absl::Hash, which is salted).
  const uint64_t seed =
      StableCombine({o.seed, StableHash(work.front().pair_id()), behavior_version});
  absl::StatusOr<std::vector<Sample>> samples = Generate2(model, tok, adapter, prompts, o, seed);
  if (!samples.ok()) return samples.status();
  // Identical pairs: resample those prompts (a new seed each round) or drop.
  std::vector<size_t> identical;
  auto find_identical = [&] {
    identical.clear();
    for (size_t i = 0; i < work.size(); ++i) {
      if ((*samples)[2 * i].ids == (*samples)[2 * i + 1].ids) identical.push_back(i);
    }
  };
  find_identical();
  for (int round = 0; o.resample_identical && round < o.max_resamples && !identical.empty();
       ++round) {
    std::vector<std::vector<int64_t>> again;
    for (size_t i : identical) again.push_back(prompts[i]);
    auto redo = Generate2(model, tok, adapter, again, o,
                          StableCombine({seed, static_cast<uint64_t>(round) + 1}));
    if (!redo.ok()) return redo.status();
    for (size_t k = 0; k < identical.size(); ++k) {
      (*samples)[2 * identical[k]] = std::move((*redo)[2 * k]);
      (*samples)[2 * identical[k] + 1] = std::move((*redo)[2 * k + 1]);
    }
    ++out.resamples;
    find_identical();
  }
  std::vector<bool> drop(work.size(), false);
  for (size_t i : identical) drop[i] = true;
  for (size_t i = 0; i < work.size(); ++i) {
    out.generated_tokens += (*samples)[2 * i].ids.size() + (*samples)[2 * i + 1].ids.size();
    if (drop[i]) {
      out.dropped.push_back(work[i].pair_id());
      continue;
    }
    bpo::v1::SampledPair& p = out.pairs.emplace_back();
    p.set_pair_id(work[i].pair_id());
    p.set_behavior_version(behavior_version);
    *p.mutable_prompt() = work[i].prompt();
    for (int64_t id : prompts[i]) p.add_prompt_token_ids(static_cast<int32_t>(id));
    Fill(p.mutable_a(), (*samples)[2 * i], tok);
    Fill(p.mutable_b(), (*samples)[2 * i + 1], tok);
  }
  return out;
}

}  // namespace bpo::actor
