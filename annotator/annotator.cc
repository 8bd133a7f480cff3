#include "annotator/annotator.h"

#include <chrono>

#include "common/logging.h"
#include "common/status_macros.h"

namespace bpo::annotator {

absl::Status RunAnnotator(Scorer* scorer, coordinator::CoordinatorClient* client,
                          const AnnotatorOptions& options, metrics::Registry* registry) {
  BPO_ASSIGN_OR_RETURN(
      auto* labels,
      registry->AddCounter("bpo_annotator_labels_total", "Labels submitted by choice", {"choice"}));
  BPO_ASSIGN_OR_RETURN(
      auto* seconds,
      registry->AddHistogram("bpo_annotator_score_seconds", "Time to score one lease of pairs",
                             metrics::ExponentialBuckets(0.001, 2.5, 14)));
  BPO_ASSIGN_OR_RETURN(auto* latency,
                       registry->AddHistogram("bpo_annotator_latency_seconds",
                                              "Time from sampling a pair to submitting its label",
                                              metrics::ExponentialBuckets(0.01, 2.5, 14)));
  metrics::Histogram& score_seconds = seconds->Add({});
  metrics::Histogram& pair_latency = latency->Add({});
  while (!options.stop()) {
    BPO_ASSIGN_OR_RETURN(bpo::v1::LeasePairsResponse lease,
                         client->LeasePairs(options.pairs_per_lease, options.lease));
    client->MarkProgress();  // leases are extended while the loop comes round
    if (lease.pairs().empty()) {
      BPO_ASSIGN_OR_RETURN(bool done, client->RunDone());
      if (done) return absl::OkStatus();
      coordinator::SleepRetryAfter(lease.retry_after());
      continue;
    }
    client->HoldLease(lease.lease().lease_id());
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<bpo::v1::SampledPair> pairs(lease.pairs().begin(), lease.pairs().end());
    BPO_ASSIGN_OR_RETURN(auto scores, scorer->Score(pairs));
    score_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    bpo::v1::SubmitLabelsRequest submit;
    submit.set_lease_id(lease.lease().lease_id());
    const absl::Time now = absl::Now();
    for (size_t i = 0; i < pairs.size(); ++i) {
      bpo::v1::Label l =
          LabelFor(pairs[i], scores[i].first, scores[i].second, scorer->provenance());
      l.mutable_labeled_at()->set_seconds(absl::ToUnixSeconds(now));
      const absl::Time sampled = absl::FromUnixSeconds(pairs[i].sampled_at().seconds()) +
                                 absl::Nanoseconds(pairs[i].sampled_at().nanos());
      if (pairs[i].has_sampled_at()) pair_latency.Observe(absl::ToDoubleSeconds(now - sampled));
      labels->Add({{"choice", bpo::v1::Choice_Name(l.choice())}}).Increment();
      *submit.add_labels() = std::move(l);
    }
    BPO_ASSIGN_OR_RETURN(bpo::v1::SubmitLabelsResponse result, client->SubmitLabels(submit));
    client->ReleaseLease(lease.lease().lease_id());
    for (const auto& r : result.results()) {
      if (r.outcome() == bpo::v1::ItemStatus::REJECTED) {
        BPO_LOG(WARNING) << "label for " << r.id() << " refused: " << r.message();
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace bpo::annotator
