#include "model/policy_text.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "model/checkpoint.h"
#include "model/json_reader.h"
#include "model/logprobs.h"
#include "model/reward.h"
#include "model/safetensors.h"
#include "model/torch_errors.h"

namespace bpo::model {
namespace {

using nlohmann::json;

std::string ArchitectureName(const json& cfg) {
  if (!cfg.is_object() || !cfg.contains("architectures")) return "";
  const json& a = cfg["architectures"];
  return a.is_array() && !a.empty() && a[0].is_string() ? a[0].get<std::string>() : "";
}

absl::Status GenerateTextsUnguarded(const Policy& policy, const std::vector<std::string>& prompts,
                                    const GenerateOptions& g, int64_t batch_size,
                                    const std::function<void(const GeneratedText&)>& each) {
  const Tokenizer& tok = *policy.tokenizer;
  const size_t batch = static_cast<size_t>(std::max<int64_t>(1, batch_size));
  for (size_t start = 0; start < prompts.size(); start += batch) {
    const size_t end = std::min(prompts.size(), start + batch);
    std::vector<std::vector<int64_t>> ids;
    for (size_t i = start; i < end; ++i) ids.push_back(tok.Encode(prompts[i]));
    const LeftPadded padded = LeftPad(ids, tok.pad_id());
    auto gen = Generate(*policy.model, padded.ids, padded.mask, g, policy.adapter());
    if (!gen.ok()) return gen.status();
    const at::Tensor tokens = gen->tokens.cpu(), logprobs = gen->logprobs.cpu(),
                     lengths = gen->lengths.cpu(), finished = gen->finished.cpu();
    for (int64_t row = 0; row < tokens.size(0); ++row) {
      const int64_t len = lengths[row].item<int64_t>();
      GeneratedText out;
      out.prompt_index = start + row / g.samples_per_prompt;
      out.sample = row % g.samples_per_prompt;
      out.token_ids.assign(tokens[row].data_ptr<int64_t>(), tokens[row].data_ptr<int64_t>() + len);
      out.token_logprobs.assign(logprobs[row].data_ptr<float>(),
                                logprobs[row].data_ptr<float>() + len);
      out.text = tok.Decode(out.token_ids);
      out.logprob = logprobs[row].sum().item<double>();
      out.finished = finished[row].item<bool>();
      each(out);
    }
  }
  return absl::OkStatus();
}

ResponseLogprobs ScoreResponseUnguarded(const Policy& policy, const std::string& prompt,
                                        const std::string& response) {
  const Tokenizer& tok = *policy.tokenizer;
  std::vector<int64_t> ids = tok.Encode(prompt, /*add_bos=*/true);
  const int64_t prompt_len = static_cast<int64_t>(ids.size());
  ResponseLogprobs out;
  out.token_ids = tok.Encode(response, /*add_bos=*/false);
  if (tok.eos_id() >= 0) out.token_ids.push_back(tok.eos_id());
  ids.insert(ids.end(), out.token_ids.begin(), out.token_ids.end());
  const int64_t L = static_cast<int64_t>(ids.size());
  const at::Tensor input = at::tensor(ids, at::kLong).view({1, L});
  at::Tensor response_mask = at::zeros({1, L}, at::kLong);
  response_mask.narrow(1, prompt_len, L - prompt_len).fill_(1);
  at::NoGradGuard no_grad;
  const SequenceLogprobs lp = ComputeSequenceLogprobs(
      *policy.model, input, at::ones({1, L}, at::kLong), response_mask, policy.adapter());
  const at::Tensor per_token =
      lp.tokens.cpu()[0].narrow(0, prompt_len, L - prompt_len).contiguous();
  out.token_logprobs.assign(per_token.data_ptr<float>(),
                            per_token.data_ptr<float>() + per_token.numel());
  out.sum = lp.sum.item<double>();
  out.mean = lp.mean.item<double>();
  out.tokens = lp.count.item<int64_t>();
  return out;
}

}  // namespace

absl::StatusOr<MergeMode> ParseMergeMode(const std::string& name) {
  if (name == "peft_linear") return MergeMode::kPeftLinear;
  if (name == "mean_delta") return MergeMode::kMeanDelta;
  return absl::InvalidArgumentError(
      absl::StrCat("merge mode '", name, "': expected peft_linear or mean_delta"));
}

absl::Status GenerateTexts(const Policy& policy, const std::vector<std::string>& prompts,
                           GenerateOptions options, int64_t batch_size,
                           const std::function<void(const GeneratedText&)>& each) {
  options.pad_token_id = policy.tokenizer->pad_id();
  if (policy.tokenizer->eos_id() >= 0) options.eos_token_ids = {policy.tokenizer->eos_id()};
  return CatchTorchErrors("generate", [&] {
    return GenerateTextsUnguarded(policy, prompts, options, batch_size, each);
  });
}

absl::StatusOr<ResponseLogprobs> ScoreResponse(const Policy& policy, const std::string& prompt,
                                               const std::string& response) {
  return CatchTorchErrors("response log-probs", [&]() -> absl::StatusOr<ResponseLogprobs> {
    return ScoreResponseUnguarded(policy, prompt, response);
  });
}

absl::StatusOr<json> DescribeModelDirectory(const std::string& dir) {
  auto text = ReadTextFile(dir + "/config.json");
  if (!text.ok()) return text.status();
  const std::string arch = ArchitectureName(json::parse(*text, nullptr, false));
  auto ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) return ckpt.status();
  std::map<std::string, int64_t> dtype_params;
  int64_t stored = 0;
  for (const std::string& name : (*ckpt)->Names()) {
    const TensorInfo* t = (*ckpt)->Info(name);
    dtype_params[std::string(DTypeName(t->dtype))] += t->numel();
    stored += t->numel();
  }
  json out = {{"path", dir}, {"architecture", arch}, {"stored_parameters", stored}};
  for (const auto& [d, n] : dtype_params) out["dtypes"][d] = n;
  if (arch == "DebertaV2ForSequenceClassification") {
    auto rm = LoadRewardModel(dir, {});
    if (!rm.ok()) return rm.status();
    const auto& c = rm->model->config();
    out["kind"] = "reward model";
    out["layers"] = c.num_layers;
    out["hidden_size"] = c.hidden_size;
    out["heads"] = c.num_heads;
    out["vocab_size"] = c.vocab_size;
    out["tokenizer"] = rm->tokenizer->path();
    return out;
  }
  auto m = CausalLm::Load(dir);
  if (!m.ok()) return m.status();
  const auto& c = (*m)->config();
  out["kind"] = "policy";
  out["parameters"] = (*m)->NumParameters();
  out["layers"] = c.num_layers;
  out["hidden_size"] = c.hidden_size;
  out["heads"] = c.num_heads;
  out["kv_heads"] = c.num_kv_heads;
  out["head_dim"] = c.head_dim;
  out["vocab_size"] = c.vocab_size;
  out["tied_embeddings"] = c.tie_word_embeddings;
  auto tok = Tokenizer::Load(dir);
  if (tok.ok()) {
    out["tokenizer"] = (*tok)->path();
    out["tokenizer_pieces"] = (*tok)->vocab_size();
    out["bos_eos_pad"] = {(*tok)->bos_id(), (*tok)->eos_id(), (*tok)->pad_id()};
  } else {
    out["tokenizer"] = std::string(tok.status().message());
  }
  return out;
}

}  // namespace bpo::model
