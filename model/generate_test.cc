// Sampling: HF's top-k / top-p warpers, seeded reproducibility, several
// samples per prompt, and the sampled distribution.
#include "model/generate.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace bpo::model {
namespace {

TEST(WarperTest, TopKKeepsTiesAndTopPKeepsTheSmallestNucleus) {
  const at::Tensor logits = at::log(at::tensor({0.5f, 0.2f, 0.2f, 0.1f})).unsqueeze(0);
  const at::Tensor k2 = ApplyTopKTopP(logits, 2, 1.0);
  // Tokens 1 and 2 tie for second place: both stay (HF keeps logits >= the k-th).
  EXPECT_EQ(at::isinf(k2).sum().item<int64_t>(), 1);
  EXPECT_TRUE(at::isinf(k2[0][3]).item<bool>());
  // top_p 0.6: sorted ascending 0.1, 0.2, 0.2, 0.5 with cumulative mass 0.1, 0.3,
  // 0.5, 1.0; the tokens whose mass is <= 1 - 0.6 go: 0.1 and one of the 0.2s.
  const at::Tensor p = ApplyTopKTopP(logits, 0, 0.6);
  EXPECT_EQ(at::isinf(p).sum().item<int64_t>(), 2);
  EXPECT_FALSE(at::isinf(p[0][0]).item<bool>());
  // The most likely token always survives.
  EXPECT_FALSE(at::isinf(ApplyTopKTopP(logits, 0, 1e-9)[0][0]).item<bool>());
}

TEST(GenerateTest, SeededSamplesAreReproducibleAndFollowTheDistribution) {
  auto model = CausalLm::Load(absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/llama"));
  ASSERT_TRUE(model.ok()) << model.status();
  const at::Tensor ids = at::tensor({1, 326, 372}, at::kLong).unsqueeze(0);
  GenerateOptions o;
  o.max_new_tokens = 1;
  o.top_k = 0;
  o.samples_per_prompt = 4000;
  o.seed = 9;
  o.eos_token_ids = {-1};
  auto a = Generate(**model, ids, at::ones_like(ids), o);
  auto b = Generate(**model, ids, at::ones_like(ids), o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(at::equal(a->tokens, b->tokens));
  // Empirical frequencies of the first token match softmax(logits) (4000
  // draws: 4 standard errors of the most likely token's frequency).
  at::NoGradGuard no_grad;
  const at::Tensor probs = at::softmax((*model)->ForwardLogits(ids, at::ones_like(ids))[0][2], -1);
  const int64_t top = probs.argmax().item<int64_t>();
  const double p = probs[top].item<double>();
  const double freq = (a->tokens.select(1, 0) == top).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(freq, p, 4 * std::sqrt(p * (1 - p) / 4000));
  // Per-token log-probs are the model's own (temperature 1).
  const at::Tensor lp = a->logprobs.select(1, 0);
  EXPECT_TRUE(at::allclose(lp, at::log(probs).index_select(0, a->tokens.select(1, 0)), 1e-5, 1e-5));
  o.seed = 10;
  auto c = Generate(**model, ids, at::ones_like(ids), o);
  EXPECT_FALSE(at::equal(a->tokens, c->tokens));
}

TEST(GenerateTest, RejectsBadOptions) {
  auto model = CausalLm::Load(absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/llama"));
  ASSERT_TRUE(model.ok());
  const at::Tensor ids = at::ones({1, 3}, at::kLong);
  GenerateOptions o;
  o.top_p = 0;
  EXPECT_EQ(Generate(**model, ids, ids, o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Generate(**model, ids.view({3}), ids, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bpo::model
