#include "learner/sft.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "learner/optimizer.h"
#include "learner/token_rows.h"
#include "model/generate.h"
#include "model/logprobs.h"
#include "model/lora.h"
#include "model/safetensors.h"
#include "model/torch_errors.h"
#include "nlohmann/json.hpp"

namespace bpo::learner {
namespace fs = std::filesystem;

absl::Status TrainTokenizer(const std::vector<std::string>& texts, const std::string& dir,
                            int vocab_size, uint64_t seed, TokenizerLayout layout) {
  const bool deberta = layout == TokenizerLayout::kDeberta;
  const std::string prefix = absl::StrCat(dir, deberta ? "/spm" : "/tokenizer");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": ", ec.message()));
  const std::string corpus = absl::StrCat(dir, "/.tokenizer-corpus.txt");
  {
    std::ofstream out(corpus);
    for (const auto& t : texts) {
      // One sentence a line for the trainer; newlines inside texts split them.
      for (char c : t) out << c;
      out << "\n";
    }
    if (!out) return absl::PermissionDeniedError(absl::StrCat(corpus, ": cannot write"));
  }
  // Debian's spm_train (package sentencepiece), in its own process:
  // libsentencepiece's trainer cannot run inside bpo (model/sentencepiece.h).
  const std::string spm_train = "/usr/bin/spm_train";
  if (!fs::exists(spm_train)) {
    return absl::FailedPreconditionError(
        "spm_train is not installed (Debian package sentencepiece): run scripts/setup-deps");
  }
  std::vector<std::string> args = {spm_train,
                                   absl::StrCat("--input=", corpus),
                                   absl::StrCat("--model_prefix=", prefix),
                                   absl::StrCat("--vocab_size=", vocab_size),
                                   "--model_type=bpe",
                                   "--character_coverage=1.0",
                                   "--byte_fallback=true",
                                   "--split_digits=true",
                                   absl::StrCat("--random_seed=", seed % 2147483647),
                                   "--num_threads=2",
                                   "--minloglevel=2",
                                   "--max_sentence_length=16384",
                                   "--remove_extra_whitespaces=false",
                                   "--hard_vocab_limit=false"};
  if (deberta) {
    for (const char* a : {"--pad_id=0", "--bos_id=1", "--eos_id=2", "--unk_id=3",
                          "--pad_piece=[PAD]", "--bos_piece=[CLS]", "--eos_piece=[SEP]",
                          "--unk_piece=[UNK]", "--user_defined_symbols=[MASK]"}) {
      args.push_back(a);
    }
  } else {
    args.push_back(absl::StrCat("--unk_id=", kUnkId));
    args.push_back(absl::StrCat("--bos_id=", kBosId));
    args.push_back(absl::StrCat("--eos_id=", kEosId));
    args.push_back(absl::StrCat("--pad_id=", kPadId));
  }
  const std::string log = absl::StrCat(dir, "/.tokenizer-training.log");
  const absl::StatusOr<int> code = RunToLog(spm_train, args, log);
  fs::remove(corpus, ec);
  fs::remove(prefix + ".vocab", ec);
  if (!code.ok()) return code.status();
  if (*code != 0) {
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return absl::InvalidArgumentError(absl::StrCat(
        "training the tokenizer failed: ", text.substr(text.size() > 600 ? text.size() - 600 : 0)));
  }
  fs::remove(log, ec);
  return absl::OkStatus();
}

absl::Status WriteSmallLlama(const std::string& dir, const SmallLlamaOptions& o) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": ", ec.message()));
  if (o.hidden_size % o.heads != 0 || o.heads % o.kv_heads != 0) {
    return absl::InvalidArgumentError("hidden_size must divide by heads, heads by kv_heads");
  }
  const int64_t D = o.hidden_size / o.heads;
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"vocab_size", o.vocab_size},
                           {"hidden_size", o.hidden_size},
                           {"intermediate_size", o.intermediate_size},
                           {"num_hidden_layers", o.layers},
                           {"num_attention_heads", o.heads},
                           {"num_key_value_heads", o.kv_heads},
                           {"head_dim", D},
                           {"hidden_act", "silu"},
                           {"max_position_embeddings", o.max_positions},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 10000.0},
                           {"tie_word_embeddings", false},
                           {"attention_bias", false},
                           {"mlp_bias", false},
                           {"bos_token_id", kBosId},
                           {"eos_token_id", kEosId},
                           {"pad_token_id", kPadId},
                           {"torch_dtype", "float32"},
                           {"initializer_range", 0.02}};
  std::ofstream(absl::StrCat(dir, "/config.json")) << config.dump(2) << "\n";
  at::manual_seed(o.seed);
  const int64_t E = o.hidden_size;
  auto normal = [](std::vector<int64_t> shape) { return at::randn(shape, at::kFloat) * 0.02; };
  std::vector<std::pair<std::string, at::Tensor>> w;
  w.emplace_back("model.embed_tokens.weight", normal({o.vocab_size, E}));
  for (int64_t i = 0; i < o.layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    w.emplace_back(p + "input_layernorm.weight", at::ones({E}));
    w.emplace_back(p + "post_attention_layernorm.weight", at::ones({E}));
    w.emplace_back(p + "self_attn.q_proj.weight", normal({o.heads * D, E}));
    w.emplace_back(p + "self_attn.k_proj.weight", normal({o.kv_heads * D, E}));
    w.emplace_back(p + "self_attn.v_proj.weight", normal({o.kv_heads * D, E}));
    w.emplace_back(p + "self_attn.o_proj.weight", normal({E, o.heads * D}));
    w.emplace_back(p + "mlp.gate_proj.weight", normal({o.intermediate_size, E}));
    w.emplace_back(p + "mlp.up_proj.weight", normal({o.intermediate_size, E}));
    w.emplace_back(p + "mlp.down_proj.weight", normal({E, o.intermediate_size}));
  }
  w.emplace_back("model.norm.weight", at::ones({E}));
  w.emplace_back("lm_head.weight", normal({o.vocab_size, E}));
  return model::WriteSafetensors(absl::StrCat(dir, "/model.safetensors"), w, {{"format", "pt"}});
}

namespace {

PaddedRows MakeBatch(const model::Tokenizer& tok,
                     const std::vector<std::pair<std::string, std::string>>& demos,
                     const std::vector<size_t>& rows, const SftOptions& o) {
  std::vector<TokenRow> encoded;
  encoded.reserve(rows.size());
  for (size_t r : rows) {
    encoded.push_back(EncodeRow(tok, demos[r].first, demos[r].second, o.max_prompt_tokens,
                                o.max_response_tokens));
  }
  return RightPad(encoded, tok.pad_id());
}

}  // namespace

static absl::StatusOr<std::vector<SftStep>> TrainSftUnguarded(
    model::CausalLm* model, const model::Tokenizer& tok,
    const std::vector<std::pair<std::string, std::string>>& demos, const SftOptions& o,
    const std::function<void(const SftStep&)>& on_step) {
  if (demos.empty()) return absl::InvalidArgumentError("no demonstrations to fine-tune on");
  std::vector<at::Tensor> params;
  std::unique_ptr<model::LoraEnsemble> lora;
  std::optional<model::LoraMember> adapter;
  if (o.lora_rank > 0) {
    model::LoraOptions lo;
    lo.members = 1;
    lo.rank = static_cast<int>(o.lora_rank);
    lo.alpha = o.lora_alpha > 0 ? o.lora_alpha : 2.0 * o.lora_rank;
    lo.dropout = 0;
    lo.seed = o.seed;
    auto created = model::LoraEnsemble::Create(*model, lo);
    if (!created.ok()) return created.status();
    lora = std::move(*created);
    params = lora->Parameters(0);
    adapter.emplace(lora->Member(0, /*training=*/true));
  } else {
    for (auto& [name, t] : model->NamedParameters()) {
      t.requires_grad_(true);
      params.push_back(t);
    }
  }
  AdamW adam(params, {0.9, 0.95, 1e-8, o.weight_decay});
  EpochOrder order(demos.size(), o.seed);
  std::vector<SftStep> log;
  const at::Device device = model->options().device();
  for (int64_t step = 0; step < o.steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<size_t> rows = order.Next(o.batch_size);
    const PaddedRows b = MakeBatch(tok, demos, rows, o);
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    const model::SequenceLogprobs lp =
        model::ComputeSequenceLogprobs(*model, b.input_ids.to(device), b.attention_mask.to(device),
                                       b.response_mask.to(device), adapter ? &*adapter : nullptr);
    const at::Tensor loss = -lp.sum.sum() / lp.count.sum().to(at::kFloat);
    loss.backward();
    const double grad_norm = ClipGradNorm(params, o.grad_clip > 0 ? o.grad_clip : 0);
    const double lr = LinearScheduleLr(o.learning_rate, step, o.steps, o.warmup_steps);
    {
      at::NoGradGuard no_grad;
      adam.Step(lr);
    }
    SftStep s{step + 1, loss.item<double>(), grad_norm, lr,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
    if (on_step) on_step(s);
    log.push_back(s);
  }
  for (auto& p : params) {
    p.mutable_grad() = at::Tensor();
    p.requires_grad_(false);
  }
  if (lora != nullptr) {
    model::LoraEnsemble::MergeInto(lora->Merge(model::MergeMode::kMeanDelta), lora->targets(),
                                   model);
  }
  return log;
}

absl::StatusOr<std::vector<SftStep>> TrainSft(
    model::CausalLm* model, const model::Tokenizer& tok,
    const std::vector<std::pair<std::string, std::string>>& demos, const SftOptions& o,
    const std::function<void(const SftStep&)>& on_step) {
  return model::CatchTorchErrors("SFT",
                                 [&] { return TrainSftUnguarded(model, tok, demos, o, on_step); });
}

double SftLoss(const model::CausalLm& model, const model::Tokenizer& tok,
               const std::vector<std::pair<std::string, std::string>>& demos, const SftOptions& o) {
  at::NoGradGuard no_grad;
  double nll = 0, count = 0;
  const at::Device device = model.options().device();
  for (size_t start = 0; start < demos.size(); start += static_cast<size_t>(o.batch_size)) {
    std::vector<size_t> rows;
    for (size_t i = start; i < std::min(demos.size(), start + static_cast<size_t>(o.batch_size));
         ++i) {
      rows.push_back(i);
    }
    const PaddedRows b = MakeBatch(tok, demos, rows, o);
    const auto lp = model::ComputeSequenceLogprobs(
        model, b.input_ids.to(device), b.attention_mask.to(device), b.response_mask.to(device));
    nll -= lp.sum.sum().item<double>();
    count += lp.count.sum().item<double>();
  }
  return count > 0 ? nll / count : 0;
}

absl::Status SaveCausalLm(const model::CausalLm& model, const std::string& src_dir,
                          const std::string& out_dir) {
  return SaveHfDirectory(model.NamedParameters(), src_dir, out_dir);
}

absl::Status SaveHfDirectory(const std::vector<std::pair<std::string, at::Tensor>>& weights,
                             const std::string& src_dir, const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(out_dir, ": ", ec.message()));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, t] : weights) tensors.emplace_back(name, t.detach().to(at::kCPU));
  if (auto s = model::WriteSafetensors(absl::StrCat(out_dir, "/model.safetensors"), tensors,
                                       {{"format", "pt"}});
      !s.ok()) {
    return s;
  }
  if (fs::equivalent(src_dir, out_dir, ec)) return absl::OkStatus();
  for (const auto& entry : fs::directory_iterator(src_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "model.safetensors" || name == "model.safetensors.index.json" ||
        name.rfind("model-", 0) == 0 || name.front() == '.' || !entry.is_regular_file()) {
      continue;
    }
    fs::copy_file(entry.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec)
      return absl::PermissionDeniedError(absl::StrCat(out_dir, "/", name, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace bpo::learner
