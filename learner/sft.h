// Supervised fine-tuning (SFT) of a causal LM on (prompt, response)
// demonstrations: every weight trained (full fine-tuning) on the mean
// negative log-likelihood of the response tokens (EOS included), AdamW with
// linear warmup and decay and global-norm clipping. Also what training a
// small policy from scratch needs: a SentencePiece tokenizer trained on the
// task's text and a randomly initialised Llama written as an HF directory.
#ifndef BPO_LEARNER_SFT_H_
#define BPO_LEARNER_SFT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "model/causal_lm.h"
#include "model/tokenizer.h"

namespace bpo::learner {

// Special ids of the tokenizers and models made here (Llama-2's layout):
// unk 0, bos 1, eos 2, pad 3.
inline constexpr int kUnkId = 0, kBosId = 1, kEosId = 2, kPadId = 3;

// Which special pieces a trained tokenizer has.
enum class TokenizerLayout {
  // <dir>/tokenizer.model: <unk> 0, <s> 1, </s> 2, <pad> 3 (kUnkId...).
  kLlama,
  // <dir>/spm.model as DeBERTa-v3's: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3,
  // [MASK] a user-defined piece.
  kDeberta,
};

// Trains a BPE SentencePiece model on `texts` (Debian's spm_train).
absl::Status TrainTokenizer(const std::vector<std::string>& texts, const std::string& dir,
                            int vocab_size, uint64_t seed,
                            TokenizerLayout layout = TokenizerLayout::kLlama);

struct SmallLlamaOptions {
  int64_t vocab_size = 1024;
  int64_t hidden_size = 128;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t intermediate_size = 352;
  int64_t max_positions = 256;
  uint64_t seed = 0;
};

// <dir>/config.json (LlamaForCausalLM) and <dir>/model.safetensors: linear
// and embedding weights ~ N(0, 0.02), norms 1, untied lm_head.
absl::Status WriteSmallLlama(const std::string& dir, const SmallLlamaOptions& options);

struct SftOptions {
  int64_t steps = 300;
  int64_t batch_size = 16;
  double learning_rate = 1e-3;
  int64_t warmup_steps = 20;
  double grad_clip = 1.0;
  double weight_decay = 0.0;
  int64_t max_prompt_tokens = 256;  // longer prompts keep BOS and their last tokens
  int64_t max_response_tokens = 64;
  uint64_t seed = 0;  // the order of the demonstrations (and the LoRA init)
  // > 0: LoRA fine-tuning instead of full: one adapter of this rank on every
  // linear layer of the decoder (PEFT's init), the base weights frozen; at the
  // end the adapter is merged into the weights (W += (alpha / r) B A), so the
  // result is a plain HF model like full fine-tuning's.
  int64_t lora_rank = 0;
  double lora_alpha = 0;  // 0: 2 * lora_rank
};

struct SftStep {
  int64_t step = 0;      // 1-based
  double loss = 0;       // mean NLL per response token
  double grad_norm = 0;  // global gradient norm before clipping
  double learning_rate = 0;
  double seconds = 0;
};

// Trains `model` in place (all weights, or a LoRA merged in at the end).
// INVALID_ARGUMENT for no demonstrations.
absl::StatusOr<std::vector<SftStep>> TrainSft(
    model::CausalLm* model, const model::Tokenizer& tokenizer,
    const std::vector<std::pair<std::string, std::string>>& demonstrations,
    const SftOptions& options, const std::function<void(const SftStep&)>& on_step = nullptr);

// Mean NLL per response token of `demonstrations` (no training).
double SftLoss(const model::CausalLm& model, const model::Tokenizer& tokenizer,
               const std::vector<std::pair<std::string, std::string>>& demonstrations,
               const SftOptions& options);

// Writes the model's weights to <out_dir>/model.safetensors and copies the
// other files of `src_dir` (config.json, tokenizer files) that `out_dir`
// lacks: an HF model directory every bpo command loads.
absl::Status SaveCausalLm(const model::CausalLm& model, const std::string& src_dir,
                          const std::string& out_dir);

// What SaveCausalLm does for any named weights: <out_dir>/model.safetensors,
// plus the files of `src_dir` other than weights and hidden files.
absl::Status SaveHfDirectory(const std::vector<std::pair<std::string, at::Tensor>>& weights,
                             const std::string& src_dir, const std::string& out_dir);

}  // namespace bpo::learner

#endif  // BPO_LEARNER_SFT_H_
