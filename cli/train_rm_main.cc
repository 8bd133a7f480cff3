// bpo train-rm: a DeBERTa-v3-architecture reward model trained with the
// Bradley–Terry loss on preference pairs (the paper's "RM-deberta" preference
// simulator, at small scale). The pairs come from a JSONL file, or are made
// here: two responses sampled from a policy per prompt, labelled by a
// synthetic task's hidden oracle (ties dropped). A held-out share of the
// pairs measures how often the RM agrees with the oracle.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "actor/sampler.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "data/prompts.h"
#include "learner/reward_training.h"
#include "learner/sft.h"
#include "model/policy.h"
#include "nlohmann/json.hpp"
#include "tasks/synthetic.h"

ABSL_FLAG(std::string, preferences, "",
          "JSONL preference pairs {\"prompt\", \"chosen\", \"rejected\"}; empty: sample them from "
          "--policy on --rm_prompts and label them with --task's oracle.");
ABSL_FLAG(std::string, rm_prompts, "",
          "JSONL prompts (\"prompt\" per line, e.g. a task's sft.jsonl) to sample pairs on.");
ABSL_FLAG(int, rm_pairs, 2000,
          "How many pairs to sample (one per distinct prompt first, then prompts again with new "
          "samples); ties and identical pairs are then dropped.");
ABSL_FLAG(int64_t, rm_max_new_tokens, 48, "Sampling: longest response.");
ABSL_FLAG(double, rm_temperature, 1.0, "Sampling temperature.");
ABSL_FLAG(std::string, rm_out, "", "Write the reward model (HF directory) here.");
ABSL_FLAG(std::string, rm_init, "",
          "HF DeBERTa-v2/v3 reward model directory to fine-tune; empty: a tokenizer and a small "
          "DeBERTa-v3-style model from scratch.");
ABSL_FLAG(int64_t, rm_steps, 600, "Optimizer steps.");
ABSL_FLAG(int64_t, rm_batch, 16, "Pairs per step.");
ABSL_FLAG(double, rm_lr, 5e-4, "Peak learning rate (linear warmup, then linear decay to 0).");
ABSL_FLAG(int64_t, rm_warmup, 30, "Warmup steps.");
ABSL_FLAG(int64_t, rm_max_length, 512, "Tokens of [CLS] prompt [SEP] response [SEP].");
ABSL_FLAG(double, rm_heldout, 0.1, "Share of the pairs held out to measure accuracy.");
ABSL_FLAG(int, rm_vocab_size, 1024, "From scratch: largest tokenizer vocabulary.");
ABSL_FLAG(int64_t, rm_hidden_size, 128, "From scratch: model width.");
ABSL_FLAG(int64_t, rm_layers, 2, "From scratch: encoder layers.");
ABSL_FLAG(uint64_t, rm_seed, 0, "Seeds sampling, the split, the initial weights and the order.");

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;

int Fail(const absl::Status& s) {
  std::cerr << "bpo train-rm: " << s.message() << "\n";
  return kExitFailure;
}

// Pairs sampled from the policy on distinct prompts and ordered by the oracle.
absl::StatusOr<std::vector<learner::PreferencePair>> SampleOraclePairs(uint64_t seed) {
  const std::string task_name = absl::GetFlag(FLAGS_task);
  if (task_name.empty()) {
    return absl::InvalidArgumentError(
        "without --preferences, --task names the oracle that labels sampled pairs");
  }
  auto task = tasks::MakeTask(task_name);
  if (!task.ok()) return task.status();
  if (absl::GetFlag(FLAGS_policy).empty() || absl::GetFlag(FLAGS_rm_prompts).empty()) {
    return absl::InvalidArgumentError(
        "without --preferences, --policy and --rm_prompts say what to sample pairs from");
  }
  std::vector<std::string> prompts;
  std::set<std::string> seen;
  absl::Status s = data::ForEachJsonlObject(
      absl::GetFlag(FLAGS_rm_prompts), [&](int, const nlohmann::json& j) -> absl::Status {
        if (!j.contains("prompt") || !j["prompt"].is_string()) {
          return absl::InvalidArgumentError("needs a string \"prompt\"");
        }
        if (seen.insert(j["prompt"].get<std::string>()).second) prompts.push_back(j["prompt"]);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (prompts.empty()) return absl::InvalidArgumentError(absl::StrCat(absl::GetFlag(FLAGS_rm_prompts), ": no prompts"));
  std::mt19937_64 rng(seed);
  std::shuffle(prompts.begin(), prompts.end(), rng);
  // --rm_pairs samplings: every distinct prompt once before any repeats
  // (a repeated prompt gets new samples: they are seeded by the pair id).
  const size_t distinct = prompts.size();
  const size_t wanted = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_rm_pairs)));
  prompts.resize(wanted);
  for (size_t i = distinct; i < wanted; ++i) prompts[i] = prompts[i % distinct];

  auto policy = model::LoadPolicy(absl::GetFlag(FLAGS_policy), {});
  if (!policy.ok()) return policy.status();
  actor::SamplerOptions so;
  so.temperature = absl::GetFlag(FLAGS_rm_temperature);
  so.top_k = 0;
  so.max_new_tokens = absl::GetFlag(FLAGS_rm_max_new_tokens);
  so.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  so.seed = seed;
  std::vector<learner::PreferencePair> out;
  int ties = 0, identical = 0;
  const size_t batch = 32;
  for (size_t start = 0; start < prompts.size(); start += batch) {
    std::vector<bpo::v1::PromptWork> work;
    for (size_t i = start; i < std::min(prompts.size(), start + batch); ++i) {
      bpo::v1::PromptWork w;
      w.set_pair_id(absl::StrCat("rm-", i));
      w.mutable_prompt()->set_prompt_id(absl::StrCat(i));
      w.mutable_prompt()->set_text(prompts[i]);
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
    const size_t done = std::min(prompts.size(), start + batch);
    if (done == prompts.size() || (start / batch) % 8 == 7) {
      std::cout << absl::StrFormat("sampled %d/%d prompts: %d pairs (%d ties, %d identical dropped)\n",
                                   done, prompts.size(), out.size(), ties, identical)
                << std::flush;
    }
  }
  if (out.empty()) return absl::FailedPreconditionError("every sampled pair was a tie or identical");
  return out;
}

int RunTrainRm(const std::vector<std::string>&) {
  const std::string out = absl::GetFlag(FLAGS_rm_out);
  if (out.empty()) return Fail(absl::InvalidArgumentError("--rm_out names no directory"));
  const uint64_t seed = absl::GetFlag(FLAGS_rm_seed);
  absl::StatusOr<std::vector<learner::PreferencePair>> pairs =
      absl::GetFlag(FLAGS_preferences).empty() ? SampleOraclePairs(seed)
                                               : learner::ReadPreferencePairs(absl::GetFlag(FLAGS_preferences));
  if (!pairs.ok()) return Fail(pairs.status());
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return Fail(absl::PermissionDeniedError(absl::StrCat(out, ": ", ec.message())));
  // The split: a seeded shuffle, the last share held out.
  std::mt19937_64 rng(seed + 1);
  std::shuffle(pairs->begin(), pairs->end(), rng);
  const double share = absl::GetFlag(FLAGS_rm_heldout);
  if (!(share >= 0 && share < 1)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--rm_heldout must be in [0, 1), got ", share)));
  }
  const size_t n_held = static_cast<size_t>(share * pairs->size());
  std::vector<learner::PreferencePair> heldout(pairs->end() - n_held, pairs->end());
  pairs->resize(pairs->size() - n_held);
  if (pairs->empty()) return Fail(absl::InvalidArgumentError("no pairs left to train on after the held-out split"));
  if (auto s = learner::WritePreferencePairs(*pairs, out + "/.train_pairs.jsonl"); !s.ok()) return Fail(s);
  if (auto s = learner::WritePreferencePairs(heldout, out + "/.heldout_pairs.jsonl"); !s.ok()) return Fail(s);

  std::string src = absl::GetFlag(FLAGS_rm_init);
  if (src.empty()) {
    std::vector<std::string> texts;
    for (const auto& p : *pairs) {
      texts.push_back(p.prompt + p.chosen);
      texts.push_back(p.rejected);
    }
    std::cout << "training a " << absl::GetFlag(FLAGS_rm_vocab_size)
              << "-piece DeBERTa-v3-style tokenizer on " << pairs->size() << " pairs\n"
              << std::flush;
    if (auto s = learner::TrainTokenizer(texts, out, absl::GetFlag(FLAGS_rm_vocab_size), seed,
                                         learner::TokenizerLayout::kDeberta);
        !s.ok()) {
      return Fail(s);
    }
    auto tok = model::Tokenizer::Load(out + "/spm.model");
    if (!tok.ok()) return Fail(tok.status());
    learner::SmallDebertaOptions o;
    o.vocab_size = (*tok)->vocab_size();
    o.hidden_size = absl::GetFlag(FLAGS_rm_hidden_size);
    o.layers = absl::GetFlag(FLAGS_rm_layers);
    o.heads = std::max<int64_t>(1, o.hidden_size / 32);
    o.intermediate_size = 4 * o.hidden_size;
    o.seed = seed;
    if (auto s = learner::WriteSmallDeberta(out, o); !s.ok()) return Fail(s);
    src = out;
  }
  auto rm = model::LoadRewardModel(src, {});
  if (!rm.ok()) return Fail(rm.status());
  const int64_t max_length = absl::GetFlag(FLAGS_rm_max_length);
  if (!heldout.empty()) {
    auto before = learner::EvaluatePairs(*rm, heldout, max_length);
    if (!before.ok()) return Fail(before.status());
    std::cout << absl::StrFormat("held-out before training: accuracy %.3f, loss %.4f (%d pairs)\n",
                                 before->accuracy, before->loss, before->pairs);
  }
  learner::RewardTrainOptions to;
  to.steps = absl::GetFlag(FLAGS_rm_steps);
  to.batch_size = absl::GetFlag(FLAGS_rm_batch);
  to.learning_rate = absl::GetFlag(FLAGS_rm_lr);
  to.warmup_steps = absl::GetFlag(FLAGS_rm_warmup);
  to.max_length = max_length;
  to.seed = seed;
  std::cout << absl::StrFormat("training %s on %d pairs for %d steps of %d pairs\n", src,
                               pairs->size(), to.steps, to.batch_size)
            << std::flush;
  const int64_t every = std::max<int64_t>(1, to.steps / 20);
  double loss_sum = 0, acc_sum = 0;
  int window = 0;
  auto log = learner::TrainRewardModel(*rm, *pairs, to, [&](const learner::RewardStep& s) {
    loss_sum += s.loss;
    acc_sum += s.accuracy;
    ++window;
    if (s.step % every == 0 || s.step == to.steps) {
      std::cout << absl::StrFormat("step %d/%d  loss %.4f  accuracy %.3f  lr %.2e  %.2f s/step\n", s.step,
                                   to.steps, loss_sum / window, acc_sum / window, s.learning_rate,
                                   s.seconds)
                << std::flush;
      loss_sum = acc_sum = 0;
      window = 0;
    }
  });
  if (!log.ok()) return Fail(log.status());
  if (auto s = learner::SaveRewardModel(*rm->model, src, out); !s.ok()) return Fail(s);
  nlohmann::json report = {{"train_pairs", pairs->size()},
                           {"heldout_pairs", heldout.size()},
                           {"steps", to.steps},
                           {"final_train_loss", log->empty() ? 0.0 : log->back().loss}};
  if (!heldout.empty()) {
    auto after = learner::EvaluatePairs(*rm, heldout, max_length);
    if (!after.ok()) return Fail(after.status());
    auto train_eval = learner::EvaluatePairs(
        *rm, std::vector<learner::PreferencePair>(pairs->begin(), pairs->begin() + std::min(pairs->size(), heldout.size())),
        max_length);
    if (!train_eval.ok()) return Fail(train_eval.status());
    report["heldout_accuracy"] = after->accuracy;
    report["heldout_loss"] = after->loss;
    report["train_accuracy"] = train_eval->accuracy;
    std::cout << absl::StrFormat(
        "held-out accuracy against the %s: %.3f (loss %.4f, %d pairs); on as many training pairs: %.3f\n",
        absl::GetFlag(FLAGS_preferences).empty() ? "oracle" : "labels", after->accuracy, after->loss,
        after->pairs, train_eval->accuracy);
  }
  std::ofstream(out + "/train_rm.json") << report.dump(2) << "\n";
  std::cout << "wrote " << out << "\n";
  return kExitOk;
}

}  // namespace

const Command& TrainRmCommand() {
  static const Command kCommand{
      "train-rm",
      "Bradley-Terry training of a DeBERTa-v3 reward model on preference pairs; writes an HF model.",
      "bpo train-rm --rm_out DIR (--preferences FILE.jsonl | --policy DIR --rm_prompts FILE --task T)",
      __FILE__,
      0,
      0,
      &RunTrainRm,
      {},
      {"policy", "task", "max_prompt_tokens"}};
  return kCommand;
}

}  // namespace bpo::cli
