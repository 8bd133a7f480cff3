// Automatic annotators: score both responses of a sampled pair and prefer
// the higher score (equal scores are a tie). A reward model (the paper's
// DeBERTa-v3 preference simulator) or a deterministic rule (tests, synthetic
// tasks). Each label carries its provenance: "rm:<sha256>" or "rule:<name>".
#ifndef BPO_ANNOTATOR_SCORER_H_
#define BPO_ANNOTATOR_SCORER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/common.pb.h"
#include "model/reward.h"

namespace bpo::annotator {

class Scorer {
 public:
  virtual ~Scorer() = default;
  // (score of a, score of b) for every pair.
  virtual absl::StatusOr<std::vector<std::pair<double, double>>> Score(
      const std::vector<bpo::v1::SampledPair>& pairs) = 0;
  virtual const std::string& provenance() const = 0;
  virtual bpo::v1::AnnotatorKind kind() const = 0;
  // sha256 of the reward model's weights (empty for rules).
  virtual std::string model_sha256() const { return {}; }
};

// "shorter" (fewer tokens wins), "longer", "contains:<word>" (the response
// that contains the word wins), "oracle:<task>" (a synthetic task's hidden
// oracle, tasks/synthetic.h). INVALID_ARGUMENT for another name.
absl::StatusOr<std::unique_ptr<Scorer>> MakeRuleScorer(const std::string& rule);

// The DeBERTa-v3 reward model in `dir`: (prompt text, response text)
// truncated to max_length tokens, batch_size at a time.
absl::StatusOr<std::unique_ptr<Scorer>> MakeRewardModelScorer(const std::string& dir,
                                                              const model::LoadOptions& load,
                                                              int64_t max_length,
                                                              int64_t batch_size);

// The label for scores (a, b): A, B, or TIE when equal.
bpo::v1::Label LabelFor(const bpo::v1::SampledPair& pair, double score_a, double score_b,
                        const std::string& provenance);

}  // namespace bpo::annotator

#endif  // BPO_ANNOTATOR_SCORER_H_
