#include "annotator/scorer.h"

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "snapshot/snapshot.h"
#include "tasks/synthetic.h"

namespace bpo::annotator {
namespace {

// A synthetic task's hidden oracle.
class OracleScorer : public Scorer {
 public:
  explicit OracleScorer(std::unique_ptr<tasks::Task> task)
      : task_(std::move(task)), provenance_("rule:oracle:" + task_->name()) {}

  absl::StatusOr<std::vector<std::pair<double, double>>> Score(
      const std::vector<bpo::v1::SampledPair>& pairs) override {
    std::vector<std::pair<double, double>> out;
    for (const auto& p : pairs) {
      auto a = task_->Oracle(p.prompt().text(), p.a().text());
      if (!a.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("pair '", p.pair_id(), "': ", a.status().message()));
      }
      auto b = task_->Oracle(p.prompt().text(), p.b().text());
      if (!b.ok()) return b.status();
      out.emplace_back(*a, *b);
    }
    return out;
  }
  const std::string& provenance() const override { return provenance_; }
  bpo::v1::AnnotatorKind kind() const override { return bpo::v1::ANNOTATOR_KIND_RULE; }

 private:
  std::unique_ptr<tasks::Task> task_;
  const std::string provenance_;
};

class RuleScorer : public Scorer {
 public:
  explicit RuleScorer(std::string rule) : rule_(std::move(rule)), provenance_("rule:" + rule_) {}

  absl::StatusOr<std::vector<std::pair<double, double>>> Score(
      const std::vector<bpo::v1::SampledPair>& pairs) override {
    std::vector<std::pair<double, double>> out;
    for (const auto& p : pairs) out.emplace_back(One(p.a()), One(p.b()));
    return out;
  }
  const std::string& provenance() const override { return provenance_; }
  bpo::v1::AnnotatorKind kind() const override { return bpo::v1::ANNOTATOR_KIND_RULE; }

 private:
  double One(const bpo::v1::Response& r) const {
    if (rule_ == "shorter") return -static_cast<double>(r.token_ids_size());
    if (rule_ == "longer") return static_cast<double>(r.token_ids_size());
    return absl::StrContains(r.text(), rule_.substr(9)) ? 1.0 : 0.0;  // contains:<word>
  }
  const std::string rule_;
  const std::string provenance_;
};

class RewardModelScorer : public Scorer {
 public:
  RewardModelScorer(model::RewardModel rm, std::string sha256, int64_t max_length, int64_t batch)
      : rm_(std::move(rm)),
        sha256_(std::move(sha256)),
        provenance_("rm:" + sha256_),
        max_length_(max_length),
        batch_(batch) {}

  absl::StatusOr<std::vector<std::pair<double, double>>> Score(
      const std::vector<bpo::v1::SampledPair>& pairs) override {
    std::vector<std::pair<std::string, std::string>> inputs;
    for (const auto& p : pairs) {
      inputs.emplace_back(p.prompt().text(), p.a().text());
      inputs.emplace_back(p.prompt().text(), p.b().text());
    }
    absl::StatusOr<std::vector<double>> scores =
        model::ScorePairs(rm_, inputs, max_length_, batch_);
    if (!scores.ok()) return scores.status();
    std::vector<std::pair<double, double>> out;
    for (size_t i = 0; i < pairs.size(); ++i)
      out.emplace_back((*scores)[2 * i], (*scores)[2 * i + 1]);
    return out;
  }
  const std::string& provenance() const override { return provenance_; }
  bpo::v1::AnnotatorKind kind() const override { return bpo::v1::ANNOTATOR_KIND_RM; }
  std::string model_sha256() const override { return sha256_; }

 private:
  model::RewardModel rm_;
  const std::string sha256_;
  const std::string provenance_;
  const int64_t max_length_, batch_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeRuleScorer(const std::string& rule) {
  if (absl::StartsWith(rule, "oracle:")) {
    auto task = tasks::MakeTask(rule.substr(7));
    if (!task.ok()) return task.status();
    return std::make_unique<OracleScorer>(std::move(*task));
  }
  if (rule != "shorter" && rule != "longer" &&
      !(absl::StartsWith(rule, "contains:") && rule.size() > 9)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown rule '", rule, "': expected shorter, longer, contains:<word> or oracle:<task>"));
  }
  return std::make_unique<RuleScorer>(rule);
}

absl::StatusOr<std::unique_ptr<Scorer>> MakeRewardModelScorer(const std::string& dir,
                                                              const model::LoadOptions& load,
                                                              int64_t max_length,
                                                              int64_t batch_size) {
  absl::StatusOr<model::RewardModel> rm = model::LoadRewardModel(dir, load);
  if (!rm.ok()) return rm.status();
  // The provenance names the exact weights that labelled each pair.
  absl::StatusOr<std::string> weights = ReadWholeFile(dir + "/model.safetensors");
  if (!weights.ok()) return weights.status();
  return std::make_unique<RewardModelScorer>(std::move(*rm), Sha256Hex(*weights), max_length,
                                             batch_size);
}

bpo::v1::Label LabelFor(const bpo::v1::SampledPair& pair, double score_a, double score_b,
                        const std::string& provenance) {
  bpo::v1::Label l;
  l.set_pair_id(pair.pair_id());
  l.set_choice(score_a > score_b   ? bpo::v1::CHOICE_A
               : score_b > score_a ? bpo::v1::CHOICE_B
                                   : bpo::v1::CHOICE_TIE);
  l.set_provenance(provenance);
  l.set_score_a(score_a);
  l.set_score_b(score_b);
  return l;
}

}  // namespace bpo::annotator
