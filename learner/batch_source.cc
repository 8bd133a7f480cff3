#include "learner/batch_source.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace bpo::learner {
namespace {

class PairsFileSource : public BatchSource {
 public:
  PairsFileSource(std::vector<TextPair> pairs, const model::Tokenizer* tokenizer,
                  OfflineSourceOptions options)
      : pairs_(std::move(pairs)), tokenizer_(tokenizer), options_(options), order_(pairs_.size()) {
    std::iota(order_.begin(), order_.end(), 0);
    std::shuffle(order_.begin(), order_.end(), std::mt19937_64(options_.shuffle_seed));
  }

  absl::StatusOr<BatchItem> Next(int64_t step) override {
    BatchItem item;
    if (step >= options_.total_steps) return item;  // kDone
    const int64_t per_rank = options_.batch_size / options_.world_size;
    std::vector<TextPair> mine;
    for (int64_t i = options_.rank * per_rank; i < (options_.rank + 1) * per_rank; ++i) {
      mine.push_back(pairs_[order_[step * options_.batch_size + i]]);
    }
    item.kind = BatchItem::Kind::kBatch;
    item.batch = TokenizePairs(*tokenizer_, mine, options_.max_prompt_tokens,
                               options_.max_response_tokens, /*behavior_version=*/0);
    return item;
  }
  absl::Status Commit(int64_t, const StepMetrics&) override { return absl::OkStatus(); }
  absl::Status ReportSnapshot(const bpo::v1::SnapshotInfo&, const std::string&,
                              const std::string&) override {
    return absl::OkStatus();
  }
  bool online() const override { return false; }

 private:
  std::vector<TextPair> pairs_;
  const model::Tokenizer* tokenizer_;
  OfflineSourceOptions options_;
  std::vector<size_t> order_;
};

class FeedSource : public BatchSource {
 public:
  FeedSource(coordinator::CoordinatorClient* client, CoordinatorSourceOptions options)
      : client_(client), options_(options) {}

  absl::StatusOr<BatchItem> Next(int64_t step) override {
    BPO_ASSIGN_OR_RETURN(bpo::v1::FetchBatchResponse fetched,
                         client_->FetchBatch(step, options_.rank, options_.world_size));
    BatchItem item;
    if (fetched.done()) return item;  // kDone
    if (fetched.publish_snapshot()) {
      item.kind = BatchItem::Kind::kPublish;
      item.version = fetched.publish_version();
      return item;
    }
    if (fetched.pairs().empty()) {
      coordinator::SleepRetryAfter(fetched.retry_after());
      item.kind = BatchItem::Kind::kWait;
      return item;
    }
    std::vector<bpo::v1::AnnotatedPair> annotated(fetched.pairs().begin(), fetched.pairs().end());
    BPO_ASSIGN_OR_RETURN(
        item.batch, BatchFromAnnotated(annotated, options_.pad_id, options_.max_prompt_tokens));
    item.kind = BatchItem::Kind::kBatch;
    return item;
  }

  absl::Status Commit(int64_t step, const StepMetrics& m) override {
    bpo::v1::CommitStepRequest commit;
    commit.set_step(step);
    auto& metrics = *commit.mutable_metrics();
    metrics["loss"] = m.loss;
    metrics["margin"] = m.margin;
    metrics["accuracy"] = m.accuracy;
    metrics["kl_reference"] = m.kl_reference;
    metrics["kl_sft"] = m.kl_sft;
    metrics["learning_rate"] = m.learning_rate;
    metrics["seconds"] = m.seconds;
    return client_->CommitStep(std::move(commit)).status();
  }

  absl::Status ReportSnapshot(const bpo::v1::SnapshotInfo& info, const std::string& serve_address,
                              const std::string& path) override {
    bpo::v1::ReportSnapshotRequest report;
    *report.mutable_snapshot() = info;
    report.set_serve_address(serve_address);
    report.set_path(path);
    return client_->ReportSnapshot(std::move(report));
  }
  bool online() const override { return true; }

 private:
  coordinator::CoordinatorClient* client_;
  CoordinatorSourceOptions options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BatchSource>> OpenPairsFile(const std::string& path,
                                                           const model::Tokenizer* tokenizer,
                                                           OfflineSourceOptions options) {
  BPO_ASSIGN_OR_RETURN(std::vector<TextPair> pairs, ReadPairsJsonl(path));
  const int64_t needed = options.total_steps * options.batch_size;
  if (static_cast<int64_t>(pairs.size()) < needed) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": has ", pairs.size(), " pairs; T*B = ", options.total_steps, "*",
                     options.batch_size, " = ", needed, " are needed (each pair is used once)"));
  }
  return std::unique_ptr<BatchSource>(
      std::make_unique<PairsFileSource>(std::move(pairs), tokenizer, options));
}

std::unique_ptr<BatchSource> CoordinatorSource(coordinator::CoordinatorClient* client,
                                               CoordinatorSourceOptions options) {
  return std::make_unique<FeedSource>(client, options);
}

}  // namespace bpo::learner
