// The models on cuda:0 against the same models on the CPU: the causal-LM
// fixtures (llama, gemma, gemma2, with the inputs of causal_lm_parity_test),
// LoRA ensembles from PEFT (llama, gemma) and the DeBERTa reward model.
// Skipped without a CUDA device.
//
// Tolerances (max |Δ| over unmasked positions relative to the largest
// reference magnitude):
//   fp32 CUDA against fp32 CPU: logits, sequence log-probs, generation
//   log-probs, LoRA member and merged logits, reward scores: 1e-4;
//   greedy tokens: identical;
//   bf16 CUDA against HF's fp32 reference: the parity tests' bf16 bounds
//   (causal LMs: at most 1.25x the error of HF's own bf16 model and within
//   1.5e-2 of its logits; DeBERTa: 1.5x and 3e-2).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/causal_lm.h"
#include "model/deberta.h"
#include "model/fixture_testing.h"
#include "model/generate.h"
#include "model/logprobs.h"
#include "model/lora.h"
#include "model/policy.h"
#include "model/safetensors.h"

namespace bpo::model {
namespace {

constexpr double kFp32Tolerance = 1e-4;

using fixtures::FixtureDir;
using fixtures::Reference;
using fixtures::RelativeError;

// Loads through ParseLoadOptions, as configs and flags spell dtype and device.
std::unique_ptr<CausalLm> LoadCausalLm(const std::string& arch, const std::string& dtype,
                                       const std::string& device) {
  auto options = ParseLoadOptions(dtype, device);
  EXPECT_TRUE(options.ok()) << options.status();
  if (!options.ok()) return nullptr;
  auto model = CausalLm::Load(FixtureDir(arch), *options);
  EXPECT_TRUE(model.ok()) << arch << " " << dtype << " on " << device << ": " << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

class CausalLmCudaTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
    ref_ = std::make_unique<Reference>(GetParam());
    ASSERT_TRUE(ref_->ok());
    cpu_ = LoadCausalLm(GetParam(), "float32", "cpu");
    cuda_ = LoadCausalLm(GetParam(), "float32", "cuda:0");
    ASSERT_TRUE(cpu_ != nullptr && cuda_ != nullptr);
    ASSERT_TRUE(cuda_->options().device().is_cuda());
  }

  // Logits [B, S, V] of the parity inputs, on the model's device.
  at::Tensor Logits(const CausalLm& model, const LinearAdapter* adapter = nullptr) const {
    at::NoGradGuard no_grad;
    const at::Device device = model.options().device();
    return model.ForwardLogits((*ref_)["input_ids"].to(device),
                               (*ref_)["attention_mask"].to(device), adapter);
  }

  std::unique_ptr<Reference> ref_;
  std::unique_ptr<CausalLm> cpu_, cuda_;
};

TEST_P(CausalLmCudaTest, Fp32LogitsMatchCpu) {
  const at::Tensor cuda = Logits(*cuda_);
  ASSERT_TRUE(cuda.is_cuda());
  const double err = RelativeError(cuda, Logits(*cpu_), (*ref_)["attention_mask"]);
  std::cout << GetParam() << " cuda fp32 logits vs cpu: max rel |delta| = " << err << "\n";
  EXPECT_LE(err, kFp32Tolerance);
}

TEST_P(CausalLmCudaTest, Bf16LogitsAreAsAccurateAsHfBf16) {
  const std::unique_ptr<CausalLm> bf16 = LoadCausalLm(GetParam(), "bfloat16", "cuda:0");
  ASSERT_NE(bf16, nullptr);
  ASSERT_EQ(bf16->options().dtype(), at::kBFloat16);
  const at::Tensor mask = (*ref_)["attention_mask"];
  const at::Tensor logits = Logits(*bf16);
  ASSERT_TRUE(logits.is_cuda());
  const double ours = RelativeError(logits, (*ref_)["logits"], mask);
  const double theirs = RelativeError((*ref_)["logits_bf16"], (*ref_)["logits"], mask);
  const double vs_hf = RelativeError(logits, (*ref_)["logits_bf16"], mask);
  std::cout << GetParam() << " cuda bf16: ours vs fp32 " << ours << ", HF bf16 vs fp32 " << theirs
            << ", ours vs HF bf16 " << vs_hf << "\n";
  EXPECT_LE(ours, 1.25 * theirs);
  EXPECT_LE(vs_hf, 1.5e-2);
}

TEST_P(CausalLmCudaTest, SequenceLogprobsMatchCpu) {
  at::NoGradGuard no_grad;
  const at::Tensor ids = (*ref_)["lp_input_ids"], mask = (*ref_)["lp_attention_mask"],
                   response = (*ref_)["lp_response_mask"];
  // A small chunk exercises the chunked path; inputs stay on the CPU (copied over).
  const SequenceLogprobs cpu = ComputeSequenceLogprobs(*cpu_, ids, mask, response, nullptr, 7);
  const SequenceLogprobs cuda = ComputeSequenceLogprobs(*cuda_, ids, mask, response, nullptr, 7);
  ASSERT_TRUE(cuda.sum.is_cuda());
  EXPECT_TRUE(at::equal(cuda.count.cpu(), cpu.count));
  const double sum = RelativeError(cuda.sum, cpu.sum);
  const double mean = RelativeError(cuda.mean, cpu.mean);
  const double tokens = RelativeError(cuda.tokens, cpu.tokens, response);
  std::cout << GetParam() << " cuda log-probs vs cpu: sum " << sum << ", mean " << mean
            << ", tokens " << tokens << "\n";
  EXPECT_LE(sum, kFp32Tolerance);
  EXPECT_LE(mean, kFp32Tolerance);
  EXPECT_LE(tokens, kFp32Tolerance);
}

TEST_P(CausalLmCudaTest, GreedyGenerationMatchesCpuTokenForToken) {
  GenerateOptions options;
  options.greedy = true;
  options.max_new_tokens = 16;
  const at::Tensor prompt = (*ref_)["gen_input_ids"], prompt_mask = (*ref_)["gen_attention_mask"];
  auto cpu = Generate(*cpu_, prompt, prompt_mask, options);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  auto cuda = Generate(*cuda_, prompt, prompt_mask, options);
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  const at::Tensor tokens = cuda->tokens.cpu();
  EXPECT_TRUE(at::equal(tokens, cpu->tokens)) << "cuda:\n" << tokens << "\ncpu:\n" << cpu->tokens;
  EXPECT_TRUE(at::equal(cuda->lengths.cpu(), cpu->lengths));
  const at::Tensor generated =
      at::arange(options.max_new_tokens).unsqueeze(0) < cpu->lengths.unsqueeze(1);
  EXPECT_LE(RelativeError(cuda->logprobs, cpu->logprobs, generated), kFp32Tolerance);
}

INSTANTIATE_TEST_SUITE_P(Architectures, CausalLmCudaTest,
                         ::testing::Values("llama", "gemma", "gemma2"));

// The PEFT fixture ensembles (3 members of rank 4) on each device.
class LoraCudaTest : public CausalLmCudaTest {
 protected:
  std::unique_ptr<LoraEnsemble> Ensemble(const CausalLm& model) const {
    std::vector<std::string> dirs;
    for (int i = 0; i < 3; ++i)
      dirs.push_back(FixtureDir(absl::StrCat(GetParam(), "/lora/member", i)));
    auto lora = LoraEnsemble::LoadPeft(model, dirs);
    EXPECT_TRUE(lora.ok()) << lora.status();
    return lora.ok() ? std::move(*lora) : nullptr;
  }
};

TEST_P(LoraCudaTest, MemberAndMergedLogitsMatchCpu) {
  const std::unique_ptr<LoraEnsemble> cpu = Ensemble(*cpu_), cuda = Ensemble(*cuda_);
  ASSERT_TRUE(cpu != nullptr && cuda != nullptr);
  ASSERT_TRUE(cuda->A(0, 0).is_cuda());
  const at::Tensor mask = (*ref_)["attention_mask"];
  const LoraMember cpu_member = cpu->Member(0), cuda_member = cuda->Member(0);
  const double member =
      RelativeError(Logits(*cuda_, &cuda_member), Logits(*cpu_, &cpu_member), mask);
  std::cout << GetParam() << " cuda member 0 vs cpu: " << member << "\n";
  EXPECT_LE(member, kFp32Tolerance);
  // The adapter moves the logits far more than the tolerance.
  EXPECT_GT(RelativeError(Logits(*cpu_, &cpu_member), Logits(*cpu_), mask), 100 * kFp32Tolerance);
  for (const MergeMode mode : {MergeMode::kMeanDelta, MergeMode::kPeftLinear}) {
    const MergedLora cpu_merged = cpu->Merge(mode), cuda_merged = cuda->Merge(mode);
    const double err =
        RelativeError(Logits(*cuda_, &cuda_merged), Logits(*cpu_, &cpu_merged), mask);
    std::cout << GetParam() << " cuda " << MergeModeName(mode) << " vs cpu: " << err << "\n";
    EXPECT_LE(err, kFp32Tolerance) << MergeModeName(mode);
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, LoraCudaTest, ::testing::Values("llama", "gemma"));

class DebertaCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
    ref_ = std::make_unique<Reference>("deberta");
    ASSERT_TRUE(ref_->ok());
  }

  // Scores [4] of the parity inputs (given on the CPU: Score copies them over).
  at::Tensor Scores(const std::string& dtype, const std::string& device) const {
    auto options = ParseLoadOptions(dtype, device);
    EXPECT_TRUE(options.ok()) << options.status();
    if (!options.ok()) return at::Tensor();
    auto model = DebertaRewardModel::Load(FixtureDir("deberta"), *options);
    EXPECT_TRUE(model.ok()) << dtype << " on " << device << ": " << model.status();
    if (!model.ok()) return at::Tensor();
    auto scores =
        (*model)->Score((*ref_)["input_ids"], (*ref_)["attention_mask"], (*ref_)["token_type_ids"]);
    EXPECT_TRUE(scores.ok()) << scores.status();
    if (!scores.ok()) return at::Tensor();
    EXPECT_EQ(scores->device().type(), options->device.type());
    EXPECT_EQ(scores->scalar_type(), at::kFloat);
    return *scores;
  }

  std::unique_ptr<Reference> ref_;
};

TEST_F(DebertaCudaTest, Fp32ScoresMatchCpu) {
  const at::Tensor cpu = Scores("float32", "cpu"), cuda = Scores("float32", "cuda:0");
  ASSERT_TRUE(cpu.defined() && cuda.defined());
  const double err = RelativeError(cuda, cpu);
  std::cout << "deberta cuda fp32 scores vs cpu: max rel |delta| = " << err << "\n";
  EXPECT_LE(err, kFp32Tolerance);
}

TEST_F(DebertaCudaTest, Bf16ScoresAreAsAccurateAsHfBf16) {
  const at::Tensor cuda = Scores("bfloat16", "cuda:0");
  ASSERT_TRUE(cuda.defined());
  const double ours = RelativeError(cuda, (*ref_)["scores"]);
  const double theirs = RelativeError((*ref_)["scores_bf16"], (*ref_)["scores"]);
  const double vs_hf = RelativeError(cuda, (*ref_)["scores_bf16"]);
  std::cout << "deberta cuda bf16: ours vs fp32 " << ours << ", HF bf16 vs fp32 " << theirs
            << ", ours vs HF bf16 " << vs_hf << "\n";
  EXPECT_LE(ours, 1.5 * theirs);
  EXPECT_LE(vs_hf, 3e-2);
}

}  // namespace
}  // namespace bpo::model
