#include "learner/pairs.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "model/generate.h"
#include "nlohmann/json.hpp"

namespace bpo::learner {

absl::StatusOr<std::vector<TextPair>> ReadPairsJsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<TextPair> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    const std::string where = absl::StrCat(path, ":", n, ": ");
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(where + "not a JSON object");
    }
    TextPair p;
    for (auto [key, field] : {std::pair<const char*, std::string*>{"prompt", &p.prompt},
                              {"chosen", &p.chosen},
                              {"rejected", &p.rejected}}) {
      if (!j.contains(key) || !j[key].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "missing string field \"", key, "\""));
      }
      *field = j[key].get<std::string>();
    }
    if (p.chosen.empty() || p.rejected.empty()) {
      return absl::InvalidArgumentError(where + "empty chosen or rejected response");
    }
    for (auto [key, field] : {std::pair<const char*, std::optional<double>*>{"chosen_logprob", &p.chosen_logprob},
                              {"rejected_logprob", &p.rejected_logprob}}) {
      if (!j.contains(key)) continue;
      if (!j[key].is_number()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "\"", key, "\" must be a number"));
      }
      *field = j[key].get<double>();
    }
    out.push_back(std::move(p));
  }
  return out;
}

namespace {

// rows[0..B) chosen, rows[B..2B) rejected: prompt ids then response ids.
PairBatch BatchFromRows(const std::vector<std::vector<int64_t>>& rows,
                        const std::vector<int64_t>& prompt_len, int64_t pad_id) {
  const int64_t n = static_cast<int64_t>(rows.size());
  int64_t L = 0;
  for (const auto& r : rows) L = std::max<int64_t>(L, r.size());
  PairBatch b;
  b.input_ids = at::full({n, L}, pad_id, at::kLong);
  b.attention_mask = at::zeros({n, L}, at::kLong);
  b.response_mask = at::zeros({n, L}, at::kLong);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t len = static_cast<int64_t>(rows[r].size());
    b.input_ids[r].narrow(0, 0, len).copy_(at::tensor(rows[r], at::kLong));
    b.attention_mask[r].narrow(0, 0, len).fill_(1);
    b.response_mask[r].narrow(0, prompt_len[r], len - prompt_len[r]).fill_(1);
  }
  return b;
}

}  // namespace

absl::StatusOr<PairBatch> BatchFromAnnotated(const std::vector<bpo::v1::AnnotatedPair>& pairs,
                                             int64_t pad_id, int64_t max_prompt_tokens) {
  const int64_t B = static_cast<int64_t>(pairs.size());
  std::vector<std::vector<int64_t>> rows(2 * B);
  std::vector<int64_t> prompt_len(2 * B);
  std::vector<double> logps(2 * B);
  bool have_logps = B > 0;
  PairBatch b;
  for (int64_t i = 0; i < B; ++i) {
    const bpo::v1::SampledPair& p = pairs[i].pair();
    const bpo::v1::Choice choice = pairs[i].label().choice();
    if (choice != bpo::v1::CHOICE_A && choice != bpo::v1::CHOICE_B) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pair '", p.pair_id(), "': label ", bpo::v1::Choice_Name(choice),
          " names no winner; the coordinator hands out only A or B"));
    }
    if (p.prompt_token_ids().empty() || p.a().token_ids().empty() || p.b().token_ids().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("pair '", p.pair_id(), "': empty prompt or response token ids"));
    }
    const std::vector<int64_t> prompt = model::KeepPromptTail(
        {p.prompt_token_ids().begin(), p.prompt_token_ids().end()}, max_prompt_tokens);
    const bpo::v1::Response& chosen = choice == bpo::v1::CHOICE_A ? p.a() : p.b();
    const bpo::v1::Response& rejected = choice == bpo::v1::CHOICE_A ? p.b() : p.a();
    for (int side = 0; side < 2; ++side) {
      const bpo::v1::Response& r = side == 0 ? chosen : rejected;
      std::vector<int64_t>& row = rows[side * B + i];
      row = prompt;
      row.insert(row.end(), r.token_ids().begin(), r.token_ids().end());
      prompt_len[side * B + i] = static_cast<int64_t>(prompt.size());
      logps[side * B + i] = r.behavior_logprob();
    }
    have_logps = have_logps && !chosen.behavior_token_logprobs().empty() &&
                 !rejected.behavior_token_logprobs().empty();
    b.behavior_versions.push_back(p.behavior_version());
  }
  PairBatch out = BatchFromRows(rows, prompt_len, pad_id);
  out.behavior_versions = std::move(b.behavior_versions);
  if (have_logps) out.behavior_logps = at::tensor(logps, at::kDouble).to(at::kFloat);
  return out;
}

PairBatch TokenizePairs(const model::Tokenizer& tok, const std::vector<TextPair>& pairs,
                        int64_t max_prompt_tokens, int64_t max_response_tokens,
                        uint64_t behavior_version) {
  const int64_t B = static_cast<int64_t>(pairs.size());
  std::vector<std::vector<int64_t>> rows(2 * B);
  std::vector<int64_t> prompt_len(2 * B);
  bool have_logps = B > 0;
  for (int64_t i = 0; i < B; ++i) {
    const std::vector<int64_t> prompt =
        model::KeepPromptTail(tok.Encode(pairs[i].prompt, /*add_bos=*/true), max_prompt_tokens);
    for (int side = 0; side < 2; ++side) {
      std::vector<int64_t> resp =
          tok.Encode(side == 0 ? pairs[i].chosen : pairs[i].rejected, /*add_bos=*/false);
      if (static_cast<int64_t>(resp.size()) > max_response_tokens) resp.resize(max_response_tokens);
      if (tok.eos_id() >= 0) resp.push_back(tok.eos_id());
      std::vector<int64_t>& row = rows[side * B + i];
      row = prompt;
      row.insert(row.end(), resp.begin(), resp.end());
      prompt_len[side * B + i] = static_cast<int64_t>(prompt.size());
    }
    have_logps = have_logps && pairs[i].chosen_logprob && pairs[i].rejected_logprob;
  }
  PairBatch b = BatchFromRows(rows, prompt_len, tok.pad_id());
  b.behavior_versions.assign(B, behavior_version);
  if (have_logps) {
    std::vector<double> lp(2 * B);
    for (int64_t i = 0; i < B; ++i) {
      lp[i] = *pairs[i].chosen_logprob;
      lp[B + i] = *pairs[i].rejected_logprob;
    }
    b.behavior_logps = at::tensor(lp, at::kDouble).to(at::kFloat);
  }
  return b;
}

}  // namespace bpo::learner
