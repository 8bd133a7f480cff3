// Checkpoint tools: bpo model info, bpo generate, bpo logprobs, bpo score
// (the last three also as bpo model generate|logprobs|score).
// They share one set of flags; each command lists the ones it takes.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "data/prompts.h"
#include "eval/eval_result.h"
#include "eval/evaluate.h"
#include "model/checkpoint.h"
#include "model/generate.h"
#include "model/hf_config.h"
#include "model/json_reader.h"
#include "model/logprobs.h"
#include "model/policy.h"
#include "model/reward.h"
#include "model/safetensors.h"
#include "snapshot/snapshot.h"
#include "tasks/synthetic.h"

ABSL_FLAG(std::string, model, "", "Hugging Face model directory of the policy (causal LM).");
ABSL_FLAG(std::string, adapter, "",
          "PEFT LoRA adapter directories, comma-separated; several are merged (--merge_mode).");
ABSL_FLAG(std::string, merge_mode, "peft_linear",
          "How several adapters merge: peft_linear or "
          "mean_delta.");
ABSL_FLAG(std::string, prompt, "", "Prompt text.");
ABSL_FLAG(std::string, prompts, "", "JSONL file with one {\"prompt\": ...} object a line.");
ABSL_FLAG(std::string, response, "", "Response text.");
ABSL_FLAG(int64_t, max_new_tokens, 128, "Tokens to generate at most.");
ABSL_FLAG(bool, greedy, false, "Greedy decoding (ignores temperature, top_k, top_p).");
ABSL_FLAG(double, temperature, 1.0, "Sampling temperature.");
ABSL_FLAG(int64_t, top_k, 50, "Top-k filtering; 0 disables.");
ABSL_FLAG(double, top_p, 1.0, "Nucleus (top-p) filtering; 1 disables.");
ABSL_FLAG(int64_t, samples, 1, "Samples per prompt (they share the prompt's prefill).");
ABSL_FLAG(uint64_t, seed, 0, "Sampling seed.");
ABSL_FLAG(int64_t, max_length, 640,
          "Reward model: max tokens of [CLS] prompt [SEP] response [SEP].");
ABSL_FLAG(int64_t, batch_size, 16, "Prompts or pairs per batch.");
ABSL_FLAG(std::string, dtype, "float32", "float32 or bfloat16.");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:N.");
ABSL_FLAG(bool, json, false, "Print JSON (one object per line) for scripts.");
ABSL_FLAG(std::string, test_prompts, "",
          "eval: test prompts with references: JSONL ({\"prompt\", \"reference\"}, as `bpo task "
          "generate` writes test.jsonl) or a TL;DR CSV (.csv: query, reference_responses).");
ABSL_FLAG(std::string, against_adapter, "",
          "eval: head to head against the policy with these adapters (comma-separated; empty "
          "string = against the references).");
ABSL_FLAG(std::string, json_out, "", "eval: write the full result (per prompt too) as JSON here.");
ABSL_FLAG(int64_t, limit, 0, "eval: only the first N test prompts (0: all).");
ABSL_FLAG(std::string, method, "", "eval: the method's name in the result, for bpo aggregate.");
ABSL_FLAG(int64_t, run_seed, 0, "eval: the run's seed in the result, for bpo aggregate.");
ABSL_FLAG(std::string, snapshot, "",
          "eval: a behavior snapshot file a run published (<run>/snapshots/snapshot-N.safetensors) "
          "as the adapter, instead of --adapter.");
ABSL_FLAG(
    int64_t, eval_samples, 0,
    "eval: also draw this many samples per prompt (temperature 1) and report their win rate and "
    "mean reward difference against the references: the whole distribution, not just its mode.");

namespace bpo::cli {
namespace {

using nlohmann::json;

int Fail(const char* command, const absl::Status& status) {
  std::cerr << "bpo " << command << ": " << status.message() << "\n";
  return kExitFailure;
}

absl::StatusOr<model::LoadOptions> Load() {
  return model::ParseLoadOptions(absl::GetFlag(FLAGS_dtype), absl::GetFlag(FLAGS_device));
}

absl::StatusOr<model::Policy> LoadPolicyFromFlags() {
  if (absl::GetFlag(FLAGS_model).empty()) return absl::InvalidArgumentError("--model is required");
  auto load = Load();
  if (!load.ok()) return load.status();
  model::PolicyOptions options;
  options.load = *load;
  for (absl::string_view a : absl::StrSplit(absl::GetFlag(FLAGS_adapter), ',', absl::SkipEmpty())) {
    options.adapters.emplace_back(a);
  }
  const std::string mode = absl::GetFlag(FLAGS_merge_mode);
  if (mode != "peft_linear" && mode != "mean_delta") {
    return absl::InvalidArgumentError(
        absl::StrCat("--merge_mode '", mode, "': expected peft_linear or mean_delta"));
  }
  options.merge_mode =
      mode == "mean_delta" ? model::MergeMode::kMeanDelta : model::MergeMode::kPeftLinear;
  return model::LoadPolicy(absl::GetFlag(FLAGS_model), options);
}

// Objects of a JSONL file; errors name the file and line.
absl::StatusOr<std::vector<json>> ReadJsonl(const std::string& path,
                                            const std::vector<const char*>& keys) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<json> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": not a JSON object"));
    }
    for (const char* key : keys) {
      if (!j.contains(key) || !j[key].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", n, ": missing string field \"", key, "\""));
      }
    }
    out.push_back(std::move(j));
  }
  return out;
}

// ---- bpo model info ----

int RunModelInfo(const std::vector<std::string>& args) {
  const std::string& dir = args[0];
  auto text = model::ReadTextFile(dir + "/config.json");
  if (!text.ok()) return Fail("model info", text.status());
  const json cfg = json::parse(*text, nullptr, false);
  std::string arch = cfg.is_object() && cfg.contains("architectures") &&
                             cfg["architectures"].is_array() && !cfg["architectures"].empty() &&
                             cfg["architectures"][0].is_string()
                         ? cfg["architectures"][0].get<std::string>()
                         : "";
  auto ckpt = model::Checkpoint::Open(dir);
  if (!ckpt.ok()) return Fail("model info", ckpt.status());
  std::map<std::string, int64_t> dtype_params;
  int64_t stored = 0;
  for (const std::string& name : (*ckpt)->Names()) {
    const model::TensorInfo* t = (*ckpt)->Info(name);
    dtype_params[std::string(model::DTypeName(t->dtype))] += t->numel();
    stored += t->numel();
  }
  json out = {{"path", dir}, {"architecture", arch}, {"stored_parameters", stored}};
  for (const auto& [d, n] : dtype_params) out["dtypes"][d] = n;
  // Loading validates every tensor's name and shape against config.json.
  if (arch == "DebertaV2ForSequenceClassification") {
    auto rm = model::LoadRewardModel(dir, {});
    if (!rm.ok()) return Fail("model info", rm.status());
    const auto& c = rm->model->config();
    out["kind"] = "reward model";
    out["layers"] = c.num_layers;
    out["hidden_size"] = c.hidden_size;
    out["heads"] = c.num_heads;
    out["vocab_size"] = c.vocab_size;
    out["tokenizer"] = rm->tokenizer->path();
  } else {
    auto m = model::CausalLm::Load(dir);
    if (!m.ok()) return Fail("model info", m.status());
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
    auto tok = model::Tokenizer::Load(dir);
    if (tok.ok()) {
      out["tokenizer"] = (*tok)->path();
      out["tokenizer_pieces"] = (*tok)->vocab_size();
      out["bos_eos_pad"] = {(*tok)->bos_id(), (*tok)->eos_id(), (*tok)->pad_id()};
    } else {
      out["tokenizer"] = std::string(tok.status().message());
    }
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << out.dump() << "\n";
    return kExitOk;
  }
  for (const auto& [k, v] : out.items()) {
    std::cout << absl::StrFormat("%-18s %s\n", k, v.is_string() ? v.get<std::string>() : v.dump());
  }
  return kExitOk;
}

// ---- bpo generate ----

int RunGenerate(const std::vector<std::string>&) {
  std::vector<std::string> prompts;
  if (!absl::GetFlag(FLAGS_prompts).empty()) {
    auto rows = ReadJsonl(absl::GetFlag(FLAGS_prompts), {"prompt"});
    if (!rows.ok()) return Fail("generate", rows.status());
    for (const json& r : *rows) prompts.push_back(r["prompt"].get<std::string>());
  } else if (!absl::GetFlag(FLAGS_prompt).empty()) {
    prompts.push_back(absl::GetFlag(FLAGS_prompt));
  } else {
    return Fail("generate", absl::InvalidArgumentError("give --prompt or --prompts"));
  }
  auto policy = LoadPolicyFromFlags();
  if (!policy.ok()) return Fail("generate", policy.status());
  model::GenerateOptions g;
  g.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  g.greedy = absl::GetFlag(FLAGS_greedy);
  g.temperature = absl::GetFlag(FLAGS_temperature);
  g.top_k = absl::GetFlag(FLAGS_top_k);
  g.top_p = absl::GetFlag(FLAGS_top_p);
  g.samples_per_prompt = absl::GetFlag(FLAGS_samples);
  g.seed = absl::GetFlag(FLAGS_seed);
  g.pad_token_id = policy->tokenizer->pad_id();
  if (policy->tokenizer->eos_id() >= 0) g.eos_token_ids = {policy->tokenizer->eos_id()};
  const int64_t batch = std::max<int64_t>(1, absl::GetFlag(FLAGS_batch_size));
  for (size_t start = 0; start < prompts.size(); start += batch) {
    const size_t end = std::min(prompts.size(), start + static_cast<size_t>(batch));
    std::vector<std::vector<int64_t>> ids;
    for (size_t i = start; i < end; ++i) ids.push_back(policy->tokenizer->Encode(prompts[i]));
    const model::LeftPadded batch = model::LeftPad(ids, policy->tokenizer->pad_id());
    auto gen = model::Generate(*policy->model, batch.ids, batch.mask, g, policy->adapter());
    if (!gen.ok()) return Fail("generate", gen.status());
    const at::Tensor tokens = gen->tokens.cpu(), logprobs = gen->logprobs.cpu(),
                     lengths = gen->lengths.cpu(), finished = gen->finished.cpu();
    for (int64_t row = 0; row < tokens.size(0); ++row) {
      const int64_t len = lengths[row].item<int64_t>();
      std::vector<int64_t> out_ids(tokens[row].data_ptr<int64_t>(),
                                   tokens[row].data_ptr<int64_t>() + len);
      const std::string text = policy->tokenizer->Decode(out_ids);
      const size_t prompt_index = start + row / g.samples_per_prompt;
      if (absl::GetFlag(FLAGS_json)) {
        std::vector<float> lp(logprobs[row].data_ptr<float>(),
                              logprobs[row].data_ptr<float>() + len);
        json j = {{"prompt_index", prompt_index},
                  {"sample", row % g.samples_per_prompt},
                  {"text", text},
                  {"token_ids", out_ids},
                  {"token_logprobs", lp},
                  {"logprob", logprobs[row].sum().item<double>()},
                  {"finished", finished[row].item<bool>()}};
        std::cout << j.dump() << "\n";
      } else {
        std::cout << prompts[prompt_index] << text << "\n";
        if (g.samples_per_prompt > 1 || prompts.size() > 1) std::cout << "---\n";
      }
    }
  }
  return kExitOk;
}

// ---- bpo logprobs ----

int RunLogprobs(const std::vector<std::string>&) {
  const std::string prompt = absl::GetFlag(FLAGS_prompt), response = absl::GetFlag(FLAGS_response);
  if (response.empty())
    return Fail("logprobs", absl::InvalidArgumentError("--response is required"));
  auto policy = LoadPolicyFromFlags();
  if (!policy.ok()) return Fail("logprobs", policy.status());
  const auto& tok = *policy->tokenizer;
  std::vector<int64_t> ids = tok.Encode(prompt, /*add_bos=*/true);
  const size_t prompt_len = ids.size();
  std::vector<int64_t> resp = tok.Encode(response, /*add_bos=*/false);
  if (tok.eos_id() >= 0) resp.push_back(tok.eos_id());
  ids.insert(ids.end(), resp.begin(), resp.end());
  const int64_t L = static_cast<int64_t>(ids.size());
  const at::Tensor input = at::tensor(ids, at::kLong).view({1, L});
  at::Tensor response_mask = at::zeros({1, L}, at::kLong);
  response_mask.narrow(1, prompt_len, L - prompt_len).fill_(1);
  at::NoGradGuard no_grad;
  const model::SequenceLogprobs lp = model::ComputeSequenceLogprobs(
      *policy->model, input, at::ones({1, L}, at::kLong), response_mask, policy->adapter());
  const at::Tensor per_token = lp.tokens.cpu()[0].narrow(0, prompt_len, L - prompt_len);
  if (absl::GetFlag(FLAGS_json)) {
    std::vector<float> v(per_token.data_ptr<float>(),
                         per_token.data_ptr<float>() + per_token.numel());
    json j = {{"sum", lp.sum.item<double>()},
              {"mean", lp.mean.item<double>()},
              {"tokens", lp.count.item<int64_t>()},
              {"token_ids", resp},
              {"token_logprobs", v}};
    std::cout << j.dump() << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("sum %.6f  mean %.6f  over %d response tokens (EOS included)\n",
                               lp.sum.item<double>(), lp.mean.item<double>(),
                               lp.count.item<int64_t>());
  for (int64_t i = 0; i < per_token.numel(); ++i) {
    std::cout << absl::StrFormat("%6d  %-20s %.6f\n", resp[i], tok.Decode({resp[i]}, false),
                                 per_token[i].item<double>());
  }
  return kExitOk;
}

// ---- bpo score ----

int RunScore(const std::vector<std::string>&) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (!absl::GetFlag(FLAGS_pairs).empty()) {
    auto rows = ReadJsonl(absl::GetFlag(FLAGS_pairs), {"prompt", "response"});
    if (!rows.ok()) return Fail("score", rows.status());
    for (const json& r : *rows) {
      pairs.emplace_back(r["prompt"].get<std::string>(), r["response"].get<std::string>());
    }
  } else if (!absl::GetFlag(FLAGS_response).empty()) {
    pairs.emplace_back(absl::GetFlag(FLAGS_prompt), absl::GetFlag(FLAGS_response));
  } else {
    return Fail("score", absl::InvalidArgumentError("give --prompt and --response, or --pairs"));
  }
  if (absl::GetFlag(FLAGS_reward_model).empty()) {
    return Fail("score", absl::InvalidArgumentError("--reward_model is required"));
  }
  auto load = Load();
  if (!load.ok()) return Fail("score", load.status());
  auto rm = model::LoadRewardModel(absl::GetFlag(FLAGS_reward_model), *load);
  if (!rm.ok()) return Fail("score", rm.status());
  auto scores = model::ScorePairs(*rm, pairs, absl::GetFlag(FLAGS_max_length),
                                  std::max<int64_t>(1, absl::GetFlag(FLAGS_batch_size)));
  if (!scores.ok()) return Fail("score", scores.status());
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (absl::GetFlag(FLAGS_json)) {
      std::cout << json{{"index", i}, {"reward", (*scores)[i]}}.dump() << "\n";
    } else {
      std::cout << absl::StrFormat("%.6f\n", (*scores)[i]);
    }
  }
  return kExitOk;
}

// ---- bpo eval ----

// The test prompts with references (a TL;DR CSV as it is, anything else
// JSONL), the first --limit; every prompt needs a reference unless the
// policy is compared head to head.
absl::StatusOr<std::vector<bpo::v1::Prompt>> ReadTestPrompts(const std::string& test_path,
                                                             bool head_to_head) {
  if (test_path.empty()) return absl::InvalidArgumentError("--test_prompts is required");
  auto test = absl::EndsWith(test_path, ".csv") || absl::EndsWith(test_path, ".csv.gz")
                  ? data::ReadTldrCsv(test_path)
                  : data::ReadJsonlPrompts(test_path);
  if (!test.ok()) return test.status();
  if (absl::GetFlag(FLAGS_limit) > 0 &&
      static_cast<int64_t>(test->size()) > absl::GetFlag(FLAGS_limit)) {
    test->resize(absl::GetFlag(FLAGS_limit));
  }
  for (const auto& p : *test) {
    if (!head_to_head && p.reference().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(test_path, ": prompt '", p.prompt_id(), "' has no \"reference\""));
    }
  }
  return test;
}

// The result's description of what was evaluated, from the flags.
eval::EvalResult EvalResultFromFlags(const std::string& test_path, bool head_to_head, size_t n,
                                     const eval::GenerateOptions& go) {
  eval::EvalResult out;
  out.model = absl::GetFlag(FLAGS_model);
  out.adapter = absl::GetFlag(FLAGS_snapshot).empty() ? absl::GetFlag(FLAGS_adapter)
                                                      : absl::GetFlag(FLAGS_snapshot);
  out.against = head_to_head ? absl::GetFlag(FLAGS_against_adapter) : std::string("references");
  out.test_prompts = test_path;
  out.task = absl::GetFlag(FLAGS_task).empty() ? test_path : absl::GetFlag(FLAGS_task);
  out.method = absl::GetFlag(FLAGS_method);
  out.seed = absl::GetFlag(FLAGS_run_seed);
  out.n = static_cast<int64_t>(n);
  out.max_new_tokens = go.max_new_tokens;
  return out;
}

// --eval_samples temperature-1 samples per prompt, scored by every judge
// against the references' scores in `results`; printed and added to `out`.
absl::Status AddSampleWinRates(const model::Policy& policy, const std::vector<std::string>& prompts,
                               const eval::GenerateOptions& go,
                               const std::vector<eval::Judge>& judges,
                               const std::vector<eval::JudgeResult>& results,
                               eval::EvalResult& out) {
  const int64_t samples = absl::GetFlag(FLAGS_eval_samples);
  auto sampled =
      eval::SampledOutputs(*policy.model, *policy.tokenizer, policy.adapter(), prompts, go, samples,
                           static_cast<uint64_t>(absl::GetFlag(FLAGS_run_seed)));
  if (!sampled.ok()) return sampled.status();
  std::vector<std::string> sample_prompts;
  for (const auto& p : prompts) {
    for (int64_t k = 0; k < samples; ++k) sample_prompts.push_back(p);
  }
  std::cout << absl::StrFormat("  %d samples per prompt (temperature 1):\n", samples);
  for (size_t j = 0; j < judges.size(); ++j) {
    auto scores = eval::Score(judges[j], sample_prompts, *sampled);
    if (!scores.ok()) return scores.status();
    double wins = 0, diff = 0;
    for (size_t i = 0; i < scores->size(); ++i) {
      const double ref = results[j].other_scores[i / samples];
      wins += (*scores)[i] > ref ? 1 : 0;
      diff += (*scores)[i] - ref;
    }
    const double n = static_cast<double>(scores->size());
    std::cout << absl::StrFormat("  %-40s %10.3f %18.4f\n", judges[j].name, wins / n, diff / n);
    out.judges[judges[j].name].sample_win_rate = wins / n;
    out.judges[judges[j].name].sample_mean_reward_diff = diff / n;
  }
  out.samples_per_prompt = samples;
  return absl::OkStatus();
}

// --snapshot: a behavior snapshot a run published as the policy's adapter.
absl::Status UseSnapshotFromFlags(model::Policy& policy) {
  const std::string snap = absl::GetFlag(FLAGS_snapshot);
  if (snap.empty()) return absl::OkStatus();
  if (!absl::GetFlag(FLAGS_adapter).empty()) {
    return absl::InvalidArgumentError("give --adapter or --snapshot, not both");
  }
  auto bytes = ReadWholeFile(snap);
  if (!bytes.ok()) return bytes.status();
  auto decoded = snapshot::DecodeSnapshot(*bytes, *policy.model, snap);
  if (!decoded.ok()) return decoded.status();
  policy.merged = std::make_unique<model::MergedLora>(std::move(decoded->merged));
  return absl::OkStatus();
}

// Greedy outputs of the policy with --against_adapter, for head to head.
absl::StatusOr<std::vector<std::string>> AgainstOutputs(const model::LoadOptions& load,
                                                        const std::vector<std::string>& prompts,
                                                        const eval::GenerateOptions& go) {
  model::PolicyOptions po;
  po.load = load;
  for (absl::string_view a :
       absl::StrSplit(absl::GetFlag(FLAGS_against_adapter), ',', absl::SkipEmpty())) {
    po.adapters.emplace_back(a);
  }
  po.merge_mode = absl::GetFlag(FLAGS_merge_mode) == "mean_delta" ? model::MergeMode::kMeanDelta
                                                                  : model::MergeMode::kPeftLinear;
  auto b = model::LoadPolicy(absl::GetFlag(FLAGS_model), po);
  if (!b.ok()) return b.status();
  return eval::GreedyOutputs(*b->model, *b->tokenizer, b->adapter(), prompts, go);
}

int RunEval(const std::vector<std::string>&) {
  const std::string test_path = absl::GetFlag(FLAGS_test_prompts);
  const bool head_to_head = !absl::GetFlag(FLAGS_against_adapter).empty();
  auto test = ReadTestPrompts(test_path, head_to_head);
  if (!test.ok()) return Fail("eval", test.status());
  std::vector<std::string> prompts, references;
  for (const auto& p : *test) {
    prompts.push_back(p.text());
    references.push_back(p.reference());
  }
  // Judges: the task's oracle and/or the reward model.
  std::unique_ptr<tasks::Task> task;
  std::optional<model::RewardModel> rm;
  std::vector<eval::Judge> judges;
  if (!absl::GetFlag(FLAGS_task).empty()) {
    auto t = tasks::MakeTask(absl::GetFlag(FLAGS_task));
    if (!t.ok()) return Fail("eval", t.status());
    task = std::move(*t);
    judges.push_back({"oracle:" + task->name(), task.get(), nullptr});
  }
  auto load = Load();
  if (!load.ok()) return Fail("eval", load.status());
  if (!absl::GetFlag(FLAGS_reward_model).empty()) {
    auto r = model::LoadRewardModel(absl::GetFlag(FLAGS_reward_model), *load);
    if (!r.ok()) return Fail("eval", r.status());
    rm = std::move(*r);
    judges.push_back({"rm:" + absl::GetFlag(FLAGS_reward_model), nullptr, &*rm,
                      absl::GetFlag(FLAGS_max_length)});
  }
  if (judges.empty()) {
    return Fail("eval",
                absl::InvalidArgumentError("give --task (its oracle) and/or --reward_model"));
  }
  auto policy = LoadPolicyFromFlags();
  if (!policy.ok()) return Fail("eval", policy.status());
  if (absl::Status s = UseSnapshotFromFlags(*policy); !s.ok()) return Fail("eval", s);
  eval::GenerateOptions go;
  go.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  go.batch_size = absl::GetFlag(FLAGS_batch_size);
  auto outputs =
      eval::GreedyOutputs(*policy->model, *policy->tokenizer, policy->adapter(), prompts, go);
  if (!outputs.ok()) return Fail("eval", outputs.status());
  std::vector<std::string> others = references;
  if (head_to_head) {
    auto theirs = AgainstOutputs(*load, prompts, go);
    if (!theirs.ok()) return Fail("eval", theirs.status());
    others = std::move(*theirs);
  }
  auto results = eval::Compare(judges, prompts, *outputs, others);
  if (!results.ok()) return Fail("eval", results.status());

  const std::string against = head_to_head ? "the other policy" : "the references";
  eval::EvalResult out = EvalResultFromFlags(test_path, head_to_head, prompts.size(), go);
  std::cout << absl::StrFormat(
                   "eval: %s%s on %d test prompts (greedy, %d new tokens) against %s\n",
                   absl::GetFlag(FLAGS_model),
                   absl::GetFlag(FLAGS_adapter).empty() ? "" : " + " + absl::GetFlag(FLAGS_adapter),
                   prompts.size(), go.max_new_tokens, against)
            << absl::StrFormat("  %-40s %10s %18s\n", "judge", "win rate", "mean reward diff");
  for (const auto& r : *results) {
    std::cout << absl::StrFormat("  %-40s %10.3f %18.4f\n", r.judge, r.win_rate,
                                 r.mean_reward_diff);
    out.judges[r.judge].win_rate = r.win_rate;
    out.judges[r.judge].mean_reward_diff = r.mean_reward_diff;
  }
  if (absl::GetFlag(FLAGS_eval_samples) > 0 && !head_to_head) {
    absl::Status s = AddSampleWinRates(*policy, prompts, go, judges, *results, out);
    if (!s.ok()) return Fail("eval", s);
  }
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    out.items.emplace();
    for (size_t i = 0; i < prompts.size(); ++i) {
      eval::EvalItem item{(*test)[i].prompt_id(), (*outputs)[i], others[i], {}};
      for (const auto& r : *results) item.scores[r.judge] = {r.output_scores[i], r.other_scores[i]};
      out.items->push_back(std::move(item));
    }
    if (absl::Status s = eval::WriteEvalResult(out, absl::GetFlag(FLAGS_json_out)); !s.ok()) {
      return Fail("eval", s);
    }
  }
  if (absl::GetFlag(FLAGS_json)) std::cout << eval::EvalResultToJson(out).dump() << "\n";
  return kExitOk;
}

}  // namespace

const Command& ModelInfoCommand() {
  static const Command kCommand{"model info",
                                "Validate a Hugging Face model directory and print what it holds.",
                                "bpo model info DIR [--json]",
                                __FILE__,
                                1,
                                1,
                                &RunModelInfo,
                                {"json"}};
  return kCommand;
}

const Command& GenerateCommand() {
  static const Command kCommand{
      "generate",
      "Generate continuations of prompts with a policy (and LoRA adapters).",
      "bpo generate --model DIR [--adapter DIR,...] --prompt TEXT | --prompts FILE.jsonl [flags]",
      __FILE__,
      0,
      0,
      &RunGenerate,
      {"model", "adapter", "merge_mode", "prompt", "prompts", "max_new_tokens", "greedy",
       "temperature", "top_k", "top_p", "samples", "seed", "batch_size", "dtype", "device", "json"},
      {},
      {"model generate"}};
  return kCommand;
}

const Command& LogprobsCommand() {
  static const Command kCommand{
      "logprobs",
      "Sequence and per-token log-probs of a response under a policy.",
      "bpo logprobs --model DIR [--adapter DIR,...] --prompt P --response R [--json]",
      __FILE__,
      0,
      0,
      &RunLogprobs,
      {"model", "adapter", "merge_mode", "prompt", "response", "dtype", "device", "json"},
      {},
      {"model logprobs"}};
  return kCommand;
}

const Command& EvalCommand() {
  static const Command kCommand{
      "eval",
      "Win rate of a policy's greedy outputs against references (or another policy).",
      "bpo eval --model DIR [--adapter DIR] --test_prompts FILE.jsonl --task T | --reward_model "
      "DIR "
      "[--against_adapter DIR] [--json_out FILE]",
      __FILE__,
      0,
      0,
      &RunEval,
      {"model", "adapter", "merge_mode", "max_new_tokens", "max_length", "batch_size", "dtype",
       "device", "json", "test_prompts", "against_adapter", "json_out", "limit", "method",
       "run_seed", "eval_samples", "snapshot"},
      {"task", "reward_model"}};
  return kCommand;
}

const Command& ScoreCommand() {
  static const Command kCommand{
      "score",
      "Reward-model scores of (prompt, response) pairs.",
      "bpo score --reward_model DIR --prompt P --response R | --pairs FILE.jsonl [--json]",
      __FILE__,
      0,
      0,
      &RunScore,
      {"prompt", "response", "max_length", "batch_size", "dtype", "device", "json"},
      {"pairs", "reward_model"},
      {"model score"}};
  return kCommand;
}

}  // namespace bpo::cli
