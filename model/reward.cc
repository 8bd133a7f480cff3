#include "model/reward.h"

#include "absl/strings/str_cat.h"
#include "model/torch_errors.h"

namespace bpo::model {

static absl::StatusOr<RewardModel> LoadRewardModelUnguarded(const std::string& dir,
                                                            const LoadOptions& options) {
  RewardModel rm;
  auto model = DebertaRewardModel::Load(dir, options);
  if (!model.ok()) return model.status();
  rm.model = std::move(*model);
  auto tok = Tokenizer::Load(dir);
  if (!tok.ok()) return tok.status();
  rm.tokenizer = std::move(*tok);
  if (rm.tokenizer->cls_id() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(rm.tokenizer->path(), ": has no [CLS]/[SEP]: not a DeBERTa tokenizer"));
  }
  return rm;
}

absl::StatusOr<RewardModel> LoadRewardModel(const std::string& dir, const LoadOptions& options) {
  return CatchTorchErrors(absl::StrCat("loading ", dir),
                          [&] { return LoadRewardModelUnguarded(dir, options); });
}

absl::StatusOr<EncodedPairs> EncodePairs(
    const Tokenizer& tokenizer, const std::vector<std::pair<std::string, std::string>>& pairs,
    int64_t max_length) {
  std::vector<PairEncoding> enc;
  int64_t longest = 0;
  for (const auto& [a, b] : pairs) {
    auto e = tokenizer.EncodePair(a, b, max_length);
    if (!e.ok()) return e.status();
    longest = std::max<int64_t>(longest, e->ids.size());
    enc.push_back(std::move(*e));
  }
  const int64_t n = static_cast<int64_t>(enc.size());
  EncodedPairs out{at::full({n, longest}, tokenizer.pad_id(), at::kLong),
                   at::zeros({n, longest}, at::kLong), at::zeros({n, longest}, at::kLong)};
  for (int64_t r = 0; r < n; ++r) {
    const int64_t len = static_cast<int64_t>(enc[r].ids.size());
    out.ids[r].narrow(0, 0, len).copy_(at::tensor(enc[r].ids, at::kLong));
    out.types[r].narrow(0, 0, len).copy_(at::tensor(enc[r].type_ids, at::kLong));
    out.mask[r].narrow(0, 0, len).fill_(1);
  }
  return out;
}

static absl::StatusOr<std::vector<double>> ScorePairsUnguarded(
    const RewardModel& rm, const std::vector<std::pair<std::string, std::string>>& pairs,
    int64_t max_length, int64_t batch_size) {
  std::vector<double> out;
  out.reserve(pairs.size());
  for (size_t start = 0; start < pairs.size(); start += batch_size) {
    const size_t end = std::min(pairs.size(), start + static_cast<size_t>(batch_size));
    auto enc = EncodePairs(*rm.tokenizer, {pairs.begin() + start, pairs.begin() + end}, max_length);
    if (!enc.ok()) return enc.status();
    auto scores = rm.model->Score(enc->ids, enc->mask, enc->types);
    if (!scores.ok()) return scores.status();
    const at::Tensor cpu = scores->to(at::kCPU, at::kDouble);
    for (int64_t r = 0; r < cpu.size(0); ++r) out.push_back(cpu[r].item<double>());
  }
  return out;
}

absl::StatusOr<std::vector<double>> ScorePairs(
    const RewardModel& rm, const std::vector<std::pair<std::string, std::string>>& pairs,
    int64_t max_length, int64_t batch_size) {
  return CatchTorchErrors("scoring pairs",
                          [&] { return ScorePairsUnguarded(rm, pairs, max_length, batch_size); });
}

}  // namespace bpo::model
