#include "eval/eval_result.h"

#include <cmath>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace bpo::eval {
namespace {

using nlohmann::json;

// Field readers: a missing field keeps the default; a field of another type
// is an error naming `source` and the field's path.
class Fields {
 public:
  Fields(const json& j, absl::string_view source, std::string prefix)
      : j_(j), source_(source), prefix_(std::move(prefix)) {}

  absl::Status String(const char* key, std::string& out) const {
    if (!j_.contains(key)) return absl::OkStatus();
    if (!j_[key].is_string()) return Wrong(key, "a string");
    out = j_[key].get<std::string>();
    return absl::OkStatus();
  }
  absl::Status Int(const char* key, int64_t& out) const {
    if (!j_.contains(key)) return absl::OkStatus();
    if (!j_[key].is_number_integer()) return Wrong(key, "an integer");
    out = j_[key].get<int64_t>();
    return absl::OkStatus();
  }
  // null (how NaN was written) reads as kNotMeasured.
  absl::Status Number(const char* key, double& out, bool required = false) const {
    if (!j_.contains(key)) {
      return required ? absl::InvalidArgumentError(
                            absl::StrCat(source_, ": ", prefix_, key, ": missing"))
                      : absl::OkStatus();
    }
    if (j_[key].is_null() && !required) {
      out = kNotMeasured;
      return absl::OkStatus();
    }
    if (!j_[key].is_number()) return Wrong(key, "a number");
    out = j_[key].get<double>();
    return absl::OkStatus();
  }
  absl::Status Wrong(absl::string_view key, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": ", prefix_, key, ": expected ", what));
  }

 private:
  const json& j_;
  absl::string_view source_;
  std::string prefix_;
};

absl::StatusOr<JudgeSummary> ParseJudge(const json& j, absl::string_view source,
                                        const std::string& name) {
  const std::string prefix = absl::StrCat("judges.", name, ".");
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": judges.", name, ": expected an object"));
  }
  const Fields f(j, source, prefix);
  JudgeSummary out;
  BPO_RETURN_IF_ERROR(f.Number("win_rate", out.win_rate, /*required=*/true));
  BPO_RETURN_IF_ERROR(f.Number("mean_reward_diff", out.mean_reward_diff));
  BPO_RETURN_IF_ERROR(f.Number("sample_win_rate", out.sample_win_rate));
  BPO_RETURN_IF_ERROR(f.Number("sample_mean_reward_diff", out.sample_mean_reward_diff));
  return out;
}

absl::StatusOr<EvalItem> ParseItem(const json& j, absl::string_view source, size_t index) {
  const std::string prefix = absl::StrCat("items[", index, "].");
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": items[", index, "]: expected an object"));
  }
  const Fields f(j, source, prefix);
  EvalItem item;
  BPO_RETURN_IF_ERROR(f.String("id", item.id));
  BPO_RETURN_IF_ERROR(f.String("output", item.output));
  BPO_RETURN_IF_ERROR(f.String("other", item.other));
  if (!j.contains("scores")) return item;
  if (!j["scores"].is_object()) return f.Wrong("scores", "an object");
  for (const auto& [judge, pair] : j["scores"].items()) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() || !pair[1].is_number()) {
      return f.Wrong(absl::StrCat("scores.", judge), "[output score, other score]");
    }
    item.scores[judge] = {pair[0].get<double>(), pair[1].get<double>()};
  }
  return item;
}

}  // namespace

absl::StatusOr<JudgeSummary> EvalResult::Judge(absl::string_view name) const {
  if (auto it = judges.find(std::string(name)); it != judges.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [n, _] : judges) names.push_back(n);
  return absl::NotFoundError(
      absl::StrCat("has no judge '", name, "' (judges: ", absl::StrJoin(names, ", "), ")"));
}

json EvalResultToJson(const EvalResult& r) {
  json out = {{"model", r.model},
              {"adapter", r.adapter},
              {"against", r.against},
              {"test_prompts", r.test_prompts},
              {"task", r.task},
              {"method", r.method},
              {"seed", r.seed},
              {"n", r.n},
              {"max_new_tokens", r.max_new_tokens}};
  out["judges"] = json::object();
  for (const auto& [name, s] : r.judges) {
    json& j = out["judges"][name];
    j["win_rate"] = s.win_rate;
    if (!std::isnan(s.mean_reward_diff)) j["mean_reward_diff"] = s.mean_reward_diff;
    if (!std::isnan(s.sample_win_rate)) j["sample_win_rate"] = s.sample_win_rate;
    if (!std::isnan(s.sample_mean_reward_diff)) {
      j["sample_mean_reward_diff"] = s.sample_mean_reward_diff;
    }
  }
  if (r.samples_per_prompt) out["samples_per_prompt"] = *r.samples_per_prompt;
  if (r.items) {
    json items = json::array();
    for (const EvalItem& item : *r.items) {
      json j = {{"id", item.id}, {"output", item.output}, {"other", item.other}};
      for (const auto& [judge, scores] : item.scores) {
        j["scores"][judge] = {scores.first, scores.second};
      }
      items.push_back(std::move(j));
    }
    out["items"] = std::move(items);
  }
  return out;
}

absl::StatusOr<EvalResult> EvalResultFromJson(const json& j, absl::string_view source) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a `bpo eval --json_out` result (not a JSON object)"));
  }
  if (!j.contains("judges") || !j["judges"].is_object() || j["judges"].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": judges: missing or empty (not a `bpo eval --json_out` result)"));
  }
  const Fields f(j, source, "");
  EvalResult r;
  BPO_RETURN_IF_ERROR(f.String("model", r.model));
  BPO_RETURN_IF_ERROR(f.String("adapter", r.adapter));
  BPO_RETURN_IF_ERROR(f.String("against", r.against));
  BPO_RETURN_IF_ERROR(f.String("test_prompts", r.test_prompts));
  BPO_RETURN_IF_ERROR(f.String("task", r.task));
  BPO_RETURN_IF_ERROR(f.String("method", r.method));
  BPO_RETURN_IF_ERROR(f.Int("seed", r.seed));
  BPO_RETURN_IF_ERROR(f.Int("n", r.n));
  BPO_RETURN_IF_ERROR(f.Int("max_new_tokens", r.max_new_tokens));
  if (j.contains("samples_per_prompt")) {
    int64_t samples = 0;
    BPO_RETURN_IF_ERROR(f.Int("samples_per_prompt", samples));
    r.samples_per_prompt = samples;
  }
  for (const auto& [name, judge] : j["judges"].items()) {
    absl::StatusOr<JudgeSummary> s = ParseJudge(judge, source, name);
    if (!s.ok()) return s.status();
    r.judges[name] = *s;
  }
  if (j.contains("items")) {
    if (!j["items"].is_array()) return f.Wrong("items", "an array");
    r.items.emplace();
    for (size_t i = 0; i < j["items"].size(); ++i) {
      absl::StatusOr<EvalItem> item = ParseItem(j["items"][i], source, i);
      if (!item.ok()) return item.status();
      r.items->push_back(std::move(*item));
    }
  }
  return r;
}

absl::Status WriteEvalResult(const EvalResult& result, const std::string& path) {
  std::ofstream f(path);
  f << EvalResultToJson(result).dump(1) << "\n";
  if (!f) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

absl::StatusOr<EvalResult> ReadEvalResult(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not JSON (not a `bpo eval --json_out` result)"));
  }
  return EvalResultFromJson(j, path);
}

}  // namespace bpo::eval
