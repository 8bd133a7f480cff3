#include "learner/reward_training.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "data/prompts.h"
#include "learner/optimizer.h"
#include "learner/sft.h"
#include "model/safetensors.h"
#include "model/torch_errors.h"
#include "nlohmann/json.hpp"

namespace bpo::learner {
namespace fs = std::filesystem;

absl::StatusOr<std::vector<PreferencePair>> ReadPreferencePairs(const std::string& path) {
  std::vector<PreferencePair> out;
  absl::Status s =
      data::ForEachJsonlObject(path, [&](int, const nlohmann::json& j) -> absl::Status {
        for (const char* key : {"prompt", "chosen", "rejected"}) {
          if (!j.contains(key) || !j[key].is_string()) {
            return absl::InvalidArgumentError(
                absl::StrCat("needs string \"prompt\", \"chosen\" and \"rejected\"; \"", key,
                             "\" is missing or not a string"));
          }
        }
        out.push_back({j["prompt"].get<std::string>(), j["chosen"].get<std::string>(),
                       j["rejected"].get<std::string>()});
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (out.empty())
    return absl::InvalidArgumentError(absl::StrCat(path, ": has no preference pairs"));
  return out;
}

absl::Status WritePreferencePairs(const std::vector<PreferencePair>& pairs,
                                  const std::string& path) {
  std::ofstream out(path);
  for (const auto& p : pairs) {
    out << nlohmann::json{{"prompt", p.prompt}, {"chosen", p.chosen}, {"rejected", p.rejected}}
               .dump()
        << "\n";
  }
  out.close();
  if (!out) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

absl::Status WriteSmallDeberta(const std::string& dir, const SmallDebertaOptions& o) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": ", ec.message()));
  if (o.hidden_size % o.heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_size ", o.hidden_size, " must divide by heads ", o.heads));
  }
  // DeBERTa-v3's options (microsoft/deberta-v3-*: relative attention, log
  // buckets, c2p|p2c, shared keys, normed relative embeddings), sized down.
  const nlohmann::json config = {{"architectures", {"DebertaV2ForSequenceClassification"}},
                                 {"model_type", "deberta-v2"},
                                 {"vocab_size", o.vocab_size},
                                 {"hidden_size", o.hidden_size},
                                 {"num_hidden_layers", o.layers},
                                 {"num_attention_heads", o.heads},
                                 {"intermediate_size", o.intermediate_size},
                                 {"hidden_act", "gelu"},
                                 {"hidden_dropout_prob", 0.0},
                                 {"attention_probs_dropout_prob", 0.0},
                                 {"max_position_embeddings", o.max_positions},
                                 {"type_vocab_size", 0},
                                 {"initializer_range", 0.02},
                                 {"layer_norm_eps", 1e-7},
                                 {"relative_attention", true},
                                 {"max_relative_positions", -1},
                                 {"position_buckets", o.position_buckets},
                                 {"norm_rel_ebd", "layer_norm"},
                                 {"share_att_key", true},
                                 {"pos_att_type", {"p2c", "c2p"}},
                                 {"position_biased_input", false},
                                 {"pooler_hidden_size", o.hidden_size},
                                 {"pooler_hidden_act", "gelu"},
                                 {"pooler_dropout", 0},
                                 {"pad_token_id", 0},
                                 {"id2label", {{"0", "LABEL_0"}}},
                                 {"label2id", {{"LABEL_0", 0}}},
                                 {"torch_dtype", "float32"}};
  std::ofstream(absl::StrCat(dir, "/config.json")) << config.dump(2) << "\n";
  // What HF's tokenizer loader wants beside spm.model.
  std::ofstream(absl::StrCat(dir, "/tokenizer_config.json"))
      << nlohmann::json{{"tokenizer_class", "DebertaV2Tokenizer"},
                        {"do_lower_case", false},
                        {"split_by_punct", false},
                        {"vocab_type", "spm"},
                        {"bos_token", "[CLS]"},
                        {"eos_token", "[SEP]"},
                        {"cls_token", "[CLS]"},
                        {"sep_token", "[SEP]"},
                        {"pad_token", "[PAD]"},
                        {"unk_token", "[UNK]"},
                        {"mask_token", "[MASK]"},
                        {"model_max_length", o.max_positions}}
             .dump(2)
      << "\n";
  at::manual_seed(o.seed);
  const int64_t E = o.hidden_size, I = o.intermediate_size;
  const int64_t S = o.position_buckets > 0 ? o.position_buckets : o.max_positions;
  auto normal = [](std::vector<int64_t> shape) { return at::randn(shape, at::kFloat) * 0.02; };
  std::vector<std::pair<std::string, at::Tensor>> w;
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    w.emplace_back(name + ".weight", normal({out, in}));
    w.emplace_back(name + ".bias", at::zeros({out}));
  };
  auto norm = [&](const std::string& name) {
    w.emplace_back(name + ".weight", at::ones({E}));
    w.emplace_back(name + ".bias", at::zeros({E}));
  };
  at::Tensor embeddings = normal({o.vocab_size, E});
  embeddings[0].zero_();  // HF zeroes the padding row
  w.emplace_back("deberta.embeddings.word_embeddings.weight", embeddings);
  norm("deberta.embeddings.LayerNorm");
  w.emplace_back("deberta.encoder.rel_embeddings.weight", normal({2 * S, E}));
  norm("deberta.encoder.LayerNorm");
  for (int64_t i = 0; i < o.layers; ++i) {
    const std::string p = absl::StrCat("deberta.encoder.layer.", i, ".");
    linear(p + "attention.self.query_proj", E, E);
    linear(p + "attention.self.key_proj", E, E);
    linear(p + "attention.self.value_proj", E, E);
    linear(p + "attention.output.dense", E, E);
    norm(p + "attention.output.LayerNorm");
    linear(p + "intermediate.dense", I, E);
    linear(p + "output.dense", E, I);
    norm(p + "output.LayerNorm");
  }
  linear("pooler.dense", E, E);
  linear("classifier", 1, E);
  return model::WriteSafetensors(absl::StrCat(dir, "/model.safetensors"), w, {{"format", "pt"}});
}

namespace {

// Rewards of chosen and rejected responses: [n] each, in one forward of 2n
// rows (chosen first). With autograd when `train`.
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> PairRewards(
    const model::RewardModel& rm, const std::vector<PreferencePair>& pairs,
    const std::vector<size_t>& rows, int64_t max_length, bool train) {
  std::vector<std::pair<std::string, std::string>> texts;
  texts.reserve(2 * rows.size());
  for (size_t r : rows) texts.emplace_back(pairs[r].prompt, pairs[r].chosen);
  for (size_t r : rows) texts.emplace_back(pairs[r].prompt, pairs[r].rejected);
  auto enc = model::EncodePairs(*rm.tokenizer, texts, max_length);
  if (!enc.ok()) return enc.status();
  auto scores = train ? rm.model->TrainingScores(enc->ids, enc->mask, enc->types)
                      : rm.model->Score(enc->ids, enc->mask, enc->types);
  if (!scores.ok()) return scores.status();
  const int64_t n = static_cast<int64_t>(rows.size());
  return std::make_pair(scores->narrow(0, 0, n), scores->narrow(0, n, n));
}

}  // namespace

static absl::StatusOr<std::vector<RewardStep>> TrainRewardModelUnguarded(
    const model::RewardModel& rm, const std::vector<PreferencePair>& pairs,
    const RewardTrainOptions& o, const std::function<void(const RewardStep&)>& on_step) {
  if (pairs.empty()) return absl::InvalidArgumentError("no preference pairs to train on");
  if (rm.model == nullptr || rm.tokenizer == nullptr || rm.tokenizer->cls_id() < 0) {
    return absl::InvalidArgumentError("TrainRewardModel: needs a DeBERTa model and tokenizer");
  }
  std::vector<at::Tensor> params;
  for (auto& [name, t] : rm.model->NamedParameters()) {
    t.requires_grad_(true);
    params.push_back(t);
  }
  AdamW adam(params, {0.9, 0.999, 1e-8, o.weight_decay});
  EpochOrder order(pairs.size(), o.seed);
  std::vector<RewardStep> log;
  absl::Status error;
  for (int64_t step = 0; step < o.steps && error.ok(); ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<size_t> rows = order.Next(o.batch_size);
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    auto rewards = PairRewards(rm, pairs, rows, o.max_length, /*train=*/true);
    if (!rewards.ok()) {
      error = rewards.status();
      break;
    }
    const at::Tensor margin = rewards->first - rewards->second;
    const at::Tensor loss = -at::log_sigmoid(margin).mean();
    loss.backward();
    const double norm = ClipGradNorm(params, o.grad_clip > 0 ? o.grad_clip : 0);
    const double lr = LinearScheduleLr(o.learning_rate, step, o.steps, o.warmup_steps);
    {
      at::NoGradGuard no_grad;
      adam.Step(lr);
    }
    rm.model->WeightsChanged();
    RewardStep s;
    s.step = step + 1;
    s.loss = loss.item<double>();
    s.accuracy = (margin > 0).to(at::kDouble).mean().item<double>();
    s.margin = margin.mean().item<double>();
    s.grad_norm = norm;
    s.learning_rate = lr;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (on_step) on_step(s);
    log.push_back(s);
  }
  for (auto& p : params) {
    p.mutable_grad() = at::Tensor();
    p.requires_grad_(false);
  }
  if (!error.ok()) return error;
  return log;
}

absl::StatusOr<std::vector<RewardStep>> TrainRewardModel(
    const model::RewardModel& rm, const std::vector<PreferencePair>& pairs,
    const RewardTrainOptions& o, const std::function<void(const RewardStep&)>& on_step) {
  return model::CatchTorchErrors("reward-model training",
                                 [&] { return TrainRewardModelUnguarded(rm, pairs, o, on_step); });
}

absl::StatusOr<PairwiseEval> EvaluatePairs(const model::RewardModel& rm,
                                           const std::vector<PreferencePair>& pairs,
                                           int64_t max_length, int64_t batch_size) {
  PairwiseEval out;
  double loss = 0, right = 0;
  for (size_t start = 0; start < pairs.size(); start += static_cast<size_t>(batch_size)) {
    std::vector<size_t> rows;
    for (size_t i = start; i < std::min(pairs.size(), start + static_cast<size_t>(batch_size));
         ++i) {
      rows.push_back(i);
    }
    auto rewards = PairRewards(rm, pairs, rows, max_length, /*train=*/false);
    if (!rewards.ok()) return rewards.status();
    const at::Tensor margin = (rewards->first - rewards->second).to(at::kDouble);
    loss -= at::log_sigmoid(margin).sum().item<double>();
    right += (margin > 0).to(at::kDouble).sum().item<double>();
  }
  out.pairs = static_cast<int64_t>(pairs.size());
  if (out.pairs > 0) {
    out.loss = loss / out.pairs;
    out.accuracy = right / out.pairs;
  }
  return out;
}

absl::Status SaveRewardModel(const model::DebertaRewardModel& model, const std::string& src_dir,
                             const std::string& out_dir) {
  return SaveHfDirectory(model.NamedParameters(), src_dir, out_dir);
}

}  // namespace bpo::learner
