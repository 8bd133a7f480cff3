// A learning check that cannot pass by accident: preferences always favour
// the response with more of a marker token. Offline DPO (pairs sampled once
// from the SFT policy, reference = SFT) and BPO (reference = behavior,
// snapshot refreshed every K steps, pairs re-sampled by the current policy
// through the library's own generation) must both raise the probability that
// a sampled response contains the marker well above where it starts.
#include <ATen/ATen.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "learner/trainer.h"
#include "model/generate.h"

namespace bpo::learner {
namespace {

constexpr int64_t kResponse = 8;

// Pure sampling (no top-k), kResponse tokens, never stopping early.
model::GenerateOptions Sampling(int64_t samples_per_prompt, uint64_t seed) {
  model::GenerateOptions g;
  g.max_new_tokens = kResponse;
  g.samples_per_prompt = samples_per_prompt;
  g.top_k = 0;
  g.seed = seed;
  g.eos_token_ids = {-1};
  return g;
}

struct World {
  std::unique_ptr<model::CausalLm> model;
  int64_t marker = 0;
  at::Tensor prompts;  // [P, 4]
};

const World& GetWorld() {
  static const World* setup = [] {
    auto* s = new World();
    s->model =
        std::move(*model::CausalLm::Load(absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/llama")));
    at::manual_seed(0);
    s->prompts =
        at::cat({at::ones({64, 1}, at::kLong), at::randint(3, 400, {64, 3}, at::kLong)}, 1);
    // The marker: a token the base policy samples now and then (about one
    // response in ten contains it), so preference pairs carry signal.
    auto gen = model::Generate(*s->model, s->prompts, at::ones_like(s->prompts), Sampling(8, 1));
    // Responses that contain each token at least once.
    const at::Tensor counts = at::one_hot(gen->tokens, 400).amax(1).sum(0);
    const at::Tensor rate = counts.to(at::kDouble) / gen->tokens.size(0);
    s->marker = (rate - 0.1).abs().argmin().item<int64_t>();
    return s;
  }();
  return *setup;
}

// Fraction of sampled responses (policy + adapter) that contain the marker.
double MarkerRate(const model::LinearAdapter* adapter, uint64_t seed) {
  const World& s = GetWorld();
  auto gen =
      model::Generate(*s.model, s.prompts, at::ones_like(s.prompts), Sampling(8, seed), adapter);
  return (gen->tokens == s.marker).any(1).to(at::kDouble).mean().item<double>();
}

// Pairs from two samples per prompt: chosen = more markers; ties dropped.
PairBatch PairsFrom(const model::LinearAdapter* behavior, uint64_t version, int64_t want,
                    uint64_t seed) {
  const World& s = GetWorld();
  model::GenerateOptions g = Sampling(2, seed);
  std::vector<at::Tensor> chosen, rejected;
  for (int round = 0; static_cast<int64_t>(chosen.size()) < want && round < 50; ++round) {
    g.seed = seed * 1000 + round;
    auto gen = model::Generate(*s.model, s.prompts, at::ones_like(s.prompts), g, behavior);
    const at::Tensor hits = (gen->tokens == s.marker).sum(1);
    for (int64_t p = 0; p < s.prompts.size(0) && static_cast<int64_t>(chosen.size()) < want; ++p) {
      const int64_t a = hits[2 * p].item<int64_t>(), b = hits[2 * p + 1].item<int64_t>();
      if (a == b) continue;
      const at::Tensor ya = gen->tokens[2 * p], yb = gen->tokens[2 * p + 1];
      chosen.push_back(at::cat({s.prompts[p], a > b ? ya : yb}));
      rejected.push_back(at::cat({s.prompts[p], a > b ? yb : ya}));
    }
  }
  EXPECT_EQ(static_cast<int64_t>(chosen.size()), want);
  chosen.insert(chosen.end(), rejected.begin(), rejected.end());
  PairBatch batch;
  batch.input_ids = at::stack(chosen);
  batch.attention_mask = at::ones_like(batch.input_ids);
  batch.response_mask = at::zeros_like(batch.input_ids);
  batch.response_mask.narrow(1, 4, kResponse).fill_(1);
  batch.behavior_versions.assign(want, version);
  return batch;
}

model::LoraOptions Lora() {
  model::LoraOptions o;
  o.members = 2;
  o.rank = 4;
  o.alpha = 8;
  o.dropout = 0;
  o.seed = 3;
  return o;
}

TrainerOptions Options(ReferenceMode mode, int64_t steps) {
  TrainerOptions o;
  o.reference = mode;
  o.learning_rate = 2e-2;
  o.total_steps = steps;
  o.loss.beta = 0.1;
  o.merge_mode = model::MergeMode::kMeanDelta;
  return o;
}

TEST(LearningTest, OfflineDpoLearnsTheMarker) {
  const World& s = GetWorld();
  const double before = MarkerRate(nullptr, 77);
  auto lora = model::LoraEnsemble::Create(*s.model, Lora());
  ASSERT_TRUE(lora.ok());
  constexpr int64_t kSteps = 24, kBatch = 8;
  EnsembleTrainer trainer(s.model.get(), lora->get(), Options(ReferenceMode::kSft, kSteps));
  // F = 1: every pair sampled once, from the SFT policy.
  const PairBatch all = PairsFrom(nullptr, 0, kSteps * kBatch, 5);
  double first_loss = 0, last_loss = 0;
  for (int64_t t = 0; t < kSteps; ++t) {
    PairBatch b;
    const at::Tensor rows = at::cat({at::arange(t * kBatch, (t + 1) * kBatch),
                                     at::arange(t * kBatch, (t + 1) * kBatch) + kSteps * kBatch});
    b.input_ids = all.input_ids.index_select(0, rows);
    b.attention_mask = all.attention_mask.index_select(0, rows);
    b.response_mask = all.response_mask.index_select(0, rows);
    b.behavior_versions.assign(kBatch, 0);
    auto m = trainer.Step(b);
    ASSERT_TRUE(m.ok()) << m.status();
    if (t == 0) first_loss = m->loss;
    last_loss = m->loss;
  }
  const model::MergedLora merged = (*lora)->Merge(model::MergeMode::kMeanDelta);
  const double after = MarkerRate(&merged, 77);
  std::printf(
      "offline DPO: marker in %.1f%% of sampled responses before, %.1f%% after "
      "(loss %.3f -> %.3f, marker token %lld)\n",
      100 * before, 100 * after, first_loss, last_loss, static_cast<long long>(s.marker));
  EXPECT_GT(after, before + 0.3);
  EXPECT_LT(last_loss, first_loss);
}

TEST(LearningTest, BpoWithBehaviorReferenceAndResamplingLearnsTheMarker) {
  const World& s = GetWorld();
  const double before = MarkerRate(nullptr, 78);
  auto lora = model::LoraEnsemble::Create(*s.model, Lora());
  ASSERT_TRUE(lora.ok());
  constexpr int64_t kPhases = 6, kK = 4, kBatch = 8;
  EnsembleTrainer trainer(s.model.get(), lora->get(),
                          Options(ReferenceMode::kBehavior, kPhases * kK));
  std::vector<double> rates;
  for (int64_t p = 0; p < kPhases; ++p) {
    // Phase p: publish snapshot p (the merged ensemble), sample M = K·B pairs
    // from it, train K steps against it.
    model::MergedLora snapshot = (*lora)->Merge(model::MergeMode::kMeanDelta);
    const PairBatch phase = PairsFrom(&snapshot, p, kK * kBatch, 100 + p);
    trainer.SetBehaviorSnapshot(p, std::move(snapshot));
    trainer.DropBehaviorSnapshotsBefore(p);
    for (int64_t k = 0; k < kK; ++k) {
      const at::Tensor idx = at::arange(k * kBatch, (k + 1) * kBatch);
      PairBatch b;
      const at::Tensor rows = at::cat({idx, idx + kK * kBatch});
      b.input_ids = phase.input_ids.index_select(0, rows);
      b.attention_mask = phase.attention_mask.index_select(0, rows);
      b.response_mask = phase.response_mask.index_select(0, rows);
      b.behavior_versions.assign(kBatch, p);
      auto m = trainer.Step(b);
      ASSERT_TRUE(m.ok()) << m.status();
      // The first step of a phase starts at the behavior policy: margins 0.
      if (k == 0 && p == 0) {
        EXPECT_NEAR(m->margin, 0, 1e-4);
      }
    }
  }
  const model::MergedLora merged = (*lora)->Merge(model::MergeMode::kMeanDelta);
  const double after = MarkerRate(&merged, 78);
  std::printf("BPO (F=%lld, K=%lld): marker in %.1f%% of sampled responses before, %.1f%% after\n",
              static_cast<long long>(kPhases), static_cast<long long>(kK), 100 * before,
              100 * after);
  EXPECT_GT(after, before + 0.3);
}

TEST(TrainerTest, BadBatchesAreRefusedAndChangeNothing) {
  const World& s = GetWorld();
  auto lora = model::LoraEnsemble::Create(*s.model, Lora());
  ASSERT_TRUE(lora.ok());
  EnsembleTrainer trainer(s.model.get(), lora->get(), Options(ReferenceMode::kBehavior, 4));
  PairBatch b = PairsFrom(nullptr, 0, 2, 9);
  const at::Tensor a0 = (*lora)->A(0, 0).detach().clone();
  auto unregistered = trainer.Step(b);
  EXPECT_EQ(unregistered.status().message(),
            "batch: pair 0 was sampled by snapshot 0, which the learner does not hold");
  trainer.SetBehaviorSnapshot(0, (*lora)->Merge(model::MergeMode::kMeanDelta));
  PairBatch oov = b;
  oov.input_ids = b.input_ids.clone();
  oov.input_ids[0][5] = 400;
  EXPECT_EQ(trainer.Step(oov).status().message(),
            "batch: token ids must be in [0, 400), got [1, 400]");
  PairBatch empty = b;
  empty.response_mask = at::zeros_like(b.response_mask);
  EXPECT_EQ(trainer.Step(empty).status().message(), "batch: pair 0 has an empty chosen response");
  TrainerOptions actor = Options(ReferenceMode::kBehavior, 4);
  actor.behavior_logps_from_actor = true;
  EnsembleTrainer from_actor(s.model.get(), lora->get(), actor);
  EXPECT_EQ(from_actor.Step(b).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(at::equal((*lora)->A(0, 0), a0));  // nothing changed
  EXPECT_EQ(trainer.steps_done(), 0);
  EXPECT_TRUE(trainer.Step(b).ok());
  EXPECT_EQ(trainer.steps_done(), 1);
}

}  // namespace
}  // namespace bpo::learner
