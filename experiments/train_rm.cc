#include "experiments/train_rm.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "actor/sampler.h"
#include "common/status_macros.h"
#include "data/prompts.h"
#include "learner/sft.h"
#include "model/policy.h"
#include "model/reward.h"
#include "nlohmann/json.hpp"
#include "tasks/synthetic.h"

namespace bpo::experiments {
namespace {

// The distinct prompts of `path`, shuffled, then repeated in that order up to
// `wanted` (a repeated prompt gets new samples: they are seeded by the pair id).
absl::StatusOr<std::vector<std::string>> PromptsToSample(const std::string& path, size_t wanted,
                                                         uint64_t seed) {
  std::vector<std::string> prompts;
  std::set<std::string> seen;
  BPO_RETURN_IF_ERROR(
      data::ForEachJsonlObject(path, [&](int, const nlohmann::json& j) -> absl::Status {
        if (!j.contains("prompt") || !j["prompt"].is_string()) {
          return absl::InvalidArgumentError("needs a string \"prompt\"");
        }
        if (seen.insert(j["prompt"].get<std::string>()).second) prompts.push_back(j["prompt"]);
        return absl::OkStatus();
      }));
  if (prompts.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no prompts"));
  std::mt19937_64 rng(seed);
  std::shuffle(prompts.begin(), prompts.end(), rng);
  const size_t distinct = prompts.size();
  prompts.resize(std::max<size_t>(1, wanted));
  for (size_t i = distinct; i < prompts.size(); ++i) prompts[i] = prompts[i % distinct];
  return prompts;
}

struct Split {
  std::vector<learner::PreferencePair> train, heldout;
};

// A seeded shuffle; the last `share` held out.
absl::StatusOr<Split> SplitPairs(std::vector<learner::PreferencePair> pairs, double share,
                                 uint64_t seed) {
  if (!(share >= 0 && share < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("held-out share must be in [0, 1), got ", share));
  }
  std::mt19937_64 rng(seed + 1);
  std::shuffle(pairs.begin(), pairs.end(), rng);
  const size_t n_held = static_cast<size_t>(share * pairs.size());
  Split split;
  split.heldout.assign(pairs.end() - n_held, pairs.end());
  pairs.resize(pairs.size() - n_held);
  if (pairs.empty()) {
    return absl::InvalidArgumentError("no pairs left to train on after the held-out split");
  }
  split.train = std::move(pairs);
  return split;
}

// A tokenizer trained on the pairs' text and a small DeBERTa-v3-style model,
// written to o.out.
absl::Status WriteFreshModel(const TrainRmOptions& o,
                             const std::vector<learner::PreferencePair>& pairs) {
  std::vector<std::string> texts;
  for (const auto& p : pairs) {
    texts.push_back(p.prompt + p.chosen);
    texts.push_back(p.rejected);
  }
  std::cout << "training a " << o.vocab_size << "-piece DeBERTa-v3-style tokenizer on "
            << pairs.size() << " pairs\n"
            << std::flush;
  BPO_RETURN_IF_ERROR(learner::TrainTokenizer(texts, o.out, o.vocab_size, o.seed,
                                              learner::TokenizerLayout::kDeberta));
  auto tok = model::Tokenizer::Load(o.out + "/spm.model");
  if (!tok.ok()) return tok.status();
  learner::SmallDebertaOptions so;
  so.vocab_size = (*tok)->vocab_size();
  so.hidden_size = o.hidden_size;
  so.layers = o.layers;
  so.heads = std::max<int64_t>(1, o.hidden_size / 32);
  so.intermediate_size = 4 * o.hidden_size;
  so.seed = o.seed;
  return learner::WriteSmallDeberta(o.out, so);
}

// Trains with a progress line about 20 times; returns the last step's loss.
absl::StatusOr<double> TrainWithProgress(model::RewardModel& rm, const std::string& name,
                                         const TrainRmOptions& o,
                                         const std::vector<learner::PreferencePair>& train) {
  learner::RewardTrainOptions to;
  to.steps = o.steps;
  to.batch_size = o.batch;
  to.learning_rate = o.learning_rate;
  to.warmup_steps = o.warmup;
  to.max_length = o.max_length;
  to.seed = o.seed;
  std::cout << absl::StrFormat("training %s on %d pairs for %d steps of %d pairs\n", name,
                               train.size(), to.steps, to.batch_size)
            << std::flush;
  const int64_t every = std::max<int64_t>(1, to.steps / 20);
  double loss_sum = 0, acc_sum = 0;
  int window = 0;
  auto log = learner::TrainRewardModel(rm, train, to, [&](const learner::RewardStep& s) {
    loss_sum += s.loss;
    acc_sum += s.accuracy;
    ++window;
    if (s.step % every == 0 || s.step == to.steps) {
      std::cout << absl::StrFormat("step %d/%d  loss %.4f  accuracy %.3f  lr %.2e  %.2f s/step\n",
                                   s.step, to.steps, loss_sum / window, acc_sum / window,
                                   s.learning_rate, s.seconds)
                << std::flush;
      loss_sum = acc_sum = 0;
      window = 0;
    }
  });
  if (!log.ok()) return log.status();
  return log->empty() ? 0.0 : log->back().loss;
}

}  // namespace

absl::StatusOr<std::vector<learner::PreferencePair>> SampleOraclePairs(
    const OracleSampling& options, uint64_t seed) {
  if (options.task.empty()) {
    return absl::InvalidArgumentError(
        "without a preference file, a task names the oracle that labels sampled pairs");
  }
  auto task = tasks::MakeTask(options.task);
  if (!task.ok()) return task.status();
  if (options.policy.empty() || options.prompts.empty()) {
    return absl::InvalidArgumentError(
        "without a preference file, a policy and prompts say what to sample pairs from");
  }
  auto prompts = PromptsToSample(options.prompts, std::max(1, options.pairs), seed);
  if (!prompts.ok()) return prompts.status();
  auto policy = model::LoadPolicy(options.policy, {});
  if (!policy.ok()) return policy.status();
  actor::SamplerOptions so;
  so.temperature = options.temperature;
  so.top_k = 0;
  so.max_new_tokens = options.max_new_tokens;
  so.max_prompt_tokens = options.max_prompt_tokens;
  so.seed = seed;
  std::vector<learner::PreferencePair> out;
  int ties = 0, identical = 0;
  constexpr size_t kBatch = 32;
  for (size_t start = 0; start < prompts->size(); start += kBatch) {
    const size_t end = std::min(prompts->size(), start + kBatch);
    std::vector<bpo::v1::PromptWork> work;
    for (size_t i = start; i < end; ++i) {
      bpo::v1::PromptWork w;
      w.set_pair_id(absl::StrCat("rm-", i));
      w.mutable_prompt()->set_prompt_id(absl::StrCat(i));
      w.mutable_prompt()->set_text((*prompts)[i]);
      work.push_back(std::move(w));
    }
    auto sampled = actor::SamplePairs(*policy->model, *policy->tokenizer, nullptr, work, 0, so);
    if (!sampled.ok()) return sampled.status();
    identical += static_cast<int>(sampled->dropped.size());
    for (const auto& p : sampled->pairs) {
      auto ra = (*task)->Oracle(p.prompt().text(), p.a().text());
      auto rb = (*task)->Oracle(p.prompt().text(), p.b().text());
      if (!ra.ok()) return ra.status();
      if (!rb.ok()) return rb.status();
      if (*ra == *rb) {
        ++ties;
        continue;
      }
      const bool a_wins = *ra > *rb;
      out.push_back({p.prompt().text(), a_wins ? p.a().text() : p.b().text(),
                     a_wins ? p.b().text() : p.a().text()});
    }
    if (end == prompts->size() || (start / kBatch) % 8 == 7) {
      std::cout << absl::StrFormat(
                       "sampled %d/%d prompts: %d pairs (%d ties, %d identical dropped)\n", end,
                       prompts->size(), out.size(), ties, identical)
                << std::flush;
    }
  }
  if (out.empty())
    return absl::FailedPreconditionError("every sampled pair was a tie or identical");
  return out;
}

absl::Status TrainRm(const TrainRmOptions& o) {
  if (o.out.empty()) return absl::InvalidArgumentError("no output directory for the reward model");
  auto pairs = o.preferences.empty() ? SampleOraclePairs(o.sampling, o.seed)
                                     : learner::ReadPreferencePairs(o.preferences);
  if (!pairs.ok()) return pairs.status();
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(o.out, ": ", ec.message()));
  auto split = SplitPairs(std::move(*pairs), o.heldout, o.seed);
  if (!split.ok()) return split.status();
  const auto& [train, heldout] = *split;
  BPO_RETURN_IF_ERROR(learner::WritePreferencePairs(train, o.out + "/.train_pairs.jsonl"));
  BPO_RETURN_IF_ERROR(learner::WritePreferencePairs(heldout, o.out + "/.heldout_pairs.jsonl"));

  const std::string src = o.init.empty() ? o.out : o.init;
  if (o.init.empty()) BPO_RETURN_IF_ERROR(WriteFreshModel(o, train));
  auto rm = model::LoadRewardModel(src, {});
  if (!rm.ok()) return rm.status();
  if (!heldout.empty()) {
    auto before = learner::EvaluatePairs(*rm, heldout, o.max_length);
    if (!before.ok()) return before.status();
    std::cout << absl::StrFormat("held-out before training: accuracy %.3f, loss %.4f (%d pairs)\n",
                                 before->accuracy, before->loss, before->pairs);
  }
  auto final_loss = TrainWithProgress(*rm, src, o, train);
  if (!final_loss.ok()) return final_loss.status();
  BPO_RETURN_IF_ERROR(learner::SaveRewardModel(*rm->model, src, o.out));
  nlohmann::json report = {{"train_pairs", train.size()},
                           {"heldout_pairs", heldout.size()},
                           {"steps", o.steps},
                           {"final_train_loss", *final_loss}};
  if (!heldout.empty()) {
    auto after = learner::EvaluatePairs(*rm, heldout, o.max_length);
    if (!after.ok()) return after.status();
    const std::vector<learner::PreferencePair> train_sample(
        train.begin(), train.begin() + std::min(train.size(), heldout.size()));
    auto train_eval = learner::EvaluatePairs(*rm, train_sample, o.max_length);
    if (!train_eval.ok()) return train_eval.status();
    report["heldout_accuracy"] = after->accuracy;
    report["heldout_loss"] = after->loss;
    report["train_accuracy"] = train_eval->accuracy;
    std::cout << absl::StrFormat(
        "held-out accuracy against the %s: %.3f (loss %.4f, %d pairs); on as many training "
        "pairs: %.3f\n",
        o.preferences.empty() ? "oracle" : "labels", after->accuracy, after->loss, after->pairs,
        train_eval->accuracy);
  }
  std::ofstream f(o.out + "/train_rm.json");
  f << report.dump(2) << "\n";
  if (!f) return absl::InternalError(absl::StrCat(o.out, "/train_rm.json: cannot write"));
  std::cout << "wrote " << o.out << "\n";
  return absl::OkStatus();
}

}  // namespace bpo::experiments
