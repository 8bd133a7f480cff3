#include "learner/pairs.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "learner/token_rows.h"
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
        return absl::InvalidArgumentError(
            absl::StrCat(where, "missing string field \"", key, "\""));
      }
      *field = j[key].get<std::string>();
    }
    if (p.chosen.empty() || p.rejected.empty()) {
      return absl::InvalidArgumentError(where + "empty chosen or rejected response");
    }
    for (auto [key, field] :
         {std::pair<const char*, std::optional<double>*>{"chosen_logprob", &p.chosen_logprob},
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

// rows[0..B) chosen, rows[B..2B) rejected.
PairBatch BatchFromRows(const std::vector<TokenRow>& rows, int64_t pad_id) {
  PaddedRows padded = RightPad(rows, pad_id);
  PairBatch b;
  b.input_ids = std::move(padded.input_ids);
  b.attention_mask = std::move(padded.attention_mask);
  b.response_mask = std::move(padded.response_mask);
  return b;
}

}  // namespace

absl::StatusOr<PairBatch> BatchFromAnnotated(const std::vector<bpo::v1::AnnotatedPair>& pairs,
                                             int64_t pad_id, int64_t max_prompt_tokens) {
  const int64_t B = static_cast<int64_t>(pairs.size());
  std::vector<TokenRow> rows(2 * B);
  std::vector<double> logps(2 * B);
  bool have_logps = B > 0;
  PairBatch b;
  for (int64_t i = 0; i < B; ++i) {
    const bpo::v1::SampledPair& p = pairs[i].pair();
    const bpo::v1::Choice choice = pairs[i].label().choice();
    if (choice != bpo::v1::CHOICE_A && choice != bpo::v1::CHOICE_B) {
      return absl::InvalidArgumentError(
          absl::StrCat("pair '", p.pair_id(), "': label ", bpo::v1::Choice_Name(choice),
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
      TokenRow& row = rows[side * B + i];
      row.ids = prompt;
      row.ids.insert(row.ids.end(), r.token_ids().begin(), r.token_ids().end());
      row.prompt_tokens = static_cast<int64_t>(prompt.size());
      logps[side * B + i] = r.behavior_logprob();
    }
    have_logps = have_logps && !chosen.behavior_token_logprobs().empty() &&
                 !rejected.behavior_token_logprobs().empty();
    b.behavior_versions.push_back(p.behavior_version());
  }
  PairBatch out = BatchFromRows(rows, pad_id);
  out.behavior_versions = std::move(b.behavior_versions);
  if (have_logps) out.behavior_logps = at::tensor(logps, at::kDouble).to(at::kFloat);
  return out;
}

PairBatch TokenizePairs(const model::Tokenizer& tok, const std::vector<TextPair>& pairs,
                        int64_t max_prompt_tokens, int64_t max_response_tokens,
                        uint64_t behavior_version) {
  const int64_t B = static_cast<int64_t>(pairs.size());
  std::vector<TokenRow> rows(2 * B);
  bool have_logps = B > 0;
  for (int64_t i = 0; i < B; ++i) {
    rows[i] =
        EncodeRow(tok, pairs[i].prompt, pairs[i].chosen, max_prompt_tokens, max_response_tokens);
    rows[B + i] =
        EncodeRow(tok, pairs[i].prompt, pairs[i].rejected, max_prompt_tokens, max_response_tokens);
    have_logps = have_logps && pairs[i].chosen_logprob && pairs[i].rejected_logprob;
  }
  PairBatch b = BatchFromRows(rows, tok.pad_id());
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
