// The automatic annotator process's loop: lease sampled pairs, score them as
// one batch, submit the labels; until the run is done or a stop is requested.
#ifndef BPO_ANNOTATOR_ANNOTATOR_H_
#define BPO_ANNOTATOR_ANNOTATOR_H_

#include <functional>

#include "absl/status/status.h"
#include "annotator/scorer.h"
#include "common/metrics.h"
#include "coordinator/client.h"

namespace bpo::annotator {

struct AnnotatorOptions {
  int pairs_per_lease = 16;
  absl::Duration lease = absl::Minutes(10);
  std::function<bool()> stop = [] { return false; };
};

// `scorer`, `client` and `registry` must outlive the call.
absl::Status RunAnnotator(Scorer* scorer, coordinator::CoordinatorClient* client,
                          const AnnotatorOptions& options, metrics::Registry* registry);

}  // namespace bpo::annotator

#endif  // BPO_ANNOTATOR_ANNOTATOR_H_
