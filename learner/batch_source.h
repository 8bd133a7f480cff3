// Where a learner rank's batches come from: a static preference file
// (offline, the offline-DPO baseline) or the coordinator's LearnerFeed
// (online). The learner loop asks for step t and gets this rank's share of
// batch t, a request to publish a behavior snapshot first, a "not yet", or
// the end of the run; it tells the source when a step is committed and where
// a published snapshot lives.
#ifndef BPO_LEARNER_BATCH_SOURCE_H_
#define BPO_LEARNER_BATCH_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bpo/v1/snapshot.pb.h"
#include "coordinator/client.h"
#include "learner/pairs.h"
#include "learner/trainer.h"
#include "model/tokenizer.h"

namespace bpo::learner {

struct BatchItem {
  enum class Kind {
    kBatch,    // `batch` is this rank's share of batch t
    kPublish,  // publish behavior snapshot `version` now, then ask again
    kWait,     // nothing yet (the source already waited the coordinator's retry_after)
    kDone,     // the run is over
  };
  Kind kind = Kind::kDone;
  PairBatch batch;
  uint64_t version = 0;
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The item for step t (the next step this rank trains). Errors end the run.
  virtual absl::StatusOr<BatchItem> Next(int64_t step) = 0;
  // Rank 0: step t is trained and checkpointable; online this commits it
  // with its metrics (the coordinator then marks its pairs consumed).
  virtual absl::Status Commit(int64_t step, const StepMetrics& metrics) = 0;
  // Rank 0: snapshot `info` is served at `serve_address` and stored at
  // `path` (online: tells the coordinator; offline: nothing to tell).
  virtual absl::Status ReportSnapshot(const bpo::v1::SnapshotInfo& info,
                                      const std::string& serve_address,
                                      const std::string& path) = 0;
  // Whether batches come from the coordinator (snapshots are then published
  // when it asks, and behavior snapshot p is taken at step p*K).
  virtual bool online() const = 0;
};

struct OfflineSourceOptions {
  int64_t batch_size = 0;   // B, the global batch
  int64_t total_steps = 0;  // T: the file must hold at least T*B pairs
  int rank = 0;
  int world_size = 1;
  uint64_t shuffle_seed = 0;  // the order pairs are used in (seeds.prompts)
  int64_t max_prompt_tokens = 0;
  int64_t max_response_tokens = 0;
};

// Pairs from a JSONL file (ReadPairsJsonl), each used once, in a seeded
// shuffled order; rank r takes pairs [r*B/R, (r+1)*B/R) of each batch,
// tokenized with `tokenizer` (which must outlive the source) as snapshot 0's
// samples. INVALID_ARGUMENT names the file when it holds fewer than T*B pairs.
absl::StatusOr<std::unique_ptr<BatchSource>> OpenPairsFile(const std::string& path,
                                                           const model::Tokenizer* tokenizer,
                                                           OfflineSourceOptions options);

struct CoordinatorSourceOptions {
  int rank = 0;
  int world_size = 1;
  int64_t pad_id = 0;
  int64_t max_prompt_tokens = 0;
};

// The coordinator's LearnerFeed through `client` (which must outlive the
// source): FetchBatch for this rank's share, CommitStep, ReportSnapshot.
std::unique_ptr<BatchSource> CoordinatorSource(coordinator::CoordinatorClient* client,
                                               CoordinatorSourceOptions options);

}  // namespace bpo::learner

#endif  // BPO_LEARNER_BATCH_SOURCE_H_
