// One human rater's side of the annotation protocol: its own coordinator
// worker ("human:<rater>"), the lease it holds, the pair on its screen and the
// left/right order that pair was shown in. HumanAnnotationService keeps one
// per signed-in rater.
//
// Thread-safe: one mutex per rater serialises its coordinator calls, so two
// tabs of one rater see the same pair and never lease twice.
#ifndef BPO_ANNOTATOR_HUMAN_RATER_H_
#define BPO_ANNOTATOR_HUMAN_RATER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bpo/v1/annotation.grpc.pb.h"
#include "bpo/v1/coordinator.grpc.pb.h"

namespace bpo::annotator {

// The coordinator's stubs (thread-safe) and the deadline put on every call.
struct CoordinatorStubs {
  std::string address;
  std::unique_ptr<bpo::v1::Coordinator::Stub> coordinator;
  std::unique_ptr<bpo::v1::AnnotationQueue::Stub> queue;
  absl::Duration deadline = absl::Seconds(30);
};

// Which response the rater preferred, as the page shows them.
enum class Side { kLeft, kRight, kTie, kSkip };
// "left", "right", "tie", "skip"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Side> ParseSide(const std::string& name);
// The coordinator's choice for `side` when the page showed B on the left
// (`swapped`) or A on the left.
bpo::v1::Choice ToChoice(Side side, bool swapped);

// A pair on the rater's screen.
struct ShownPair {
  std::string pair_id;
  std::string prompt;
  std::string left;
  std::string right;
  bool swapped = false;  // left is B
  absl::Time shown_at;
};

struct RaterOptions {
  absl::Duration lease_duration = absl::Hours(1);
  int pairs_per_lease = 1;
};

class RaterWork {
 public:
  RaterWork(std::string name, const CoordinatorStubs* stubs, RaterOptions options, uint64_t seed);

  const std::string& name() const { return name_; }
  std::string provenance() const { return "human:" + name_; }

  // Registers "human:<name>" (again: the same worker id).
  absl::Status Register();

  struct Next {
    std::optional<ShownPair> pair;  // nullopt: nothing waits
    absl::Duration retry_after;
  };
  // The pair on the rater's screen: the one already shown, else the next of
  // the held lease, else the first of a new lease.
  absl::StatusOr<Next> NextPair(absl::Time now);

  struct Outcome {
    bpo::v1::Choice choice = bpo::v1::CHOICE_UNSPECIFIED;
    absl::Duration time_taken;
    bool duplicate = false;
  };
  // Submits the rater's choice for the shown pair `pair_id`.
  // FAILED_PRECONDITION when it is not the shown pair, or the coordinator
  // refused the label (e.g. the lease lapsed and the pair went to another
  // rater): the message says why and the screen moves on.
  absl::StatusOr<Outcome> Submit(const std::string& pair_id, Side side, absl::Time now);

  // Extends the held lease (ExtendLease) or, holding none, heartbeats, when
  // due. A lease the coordinator no longer holds is dropped.
  absl::Status KeepAlive(absl::Time now);
  // When KeepAlive next has work to do.
  absl::Time due() const;

  // Seen: the rater's page called the API. Lock-free.
  void Touch(absl::Time now);
  absl::Time last_seen() const;

  struct Counts {
    int64_t labelled = 0;  // A, B or tie
    std::map<bpo::v1::Choice, int64_t> by_choice;
  };
  Counts counts() const;

 private:
  absl::Status RegisterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<bpo::v1::LeasePairsResponse> Lease() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropLease() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string name_;
  const CoordinatorStubs* const stubs_;
  const RaterOptions options_;

  mutable absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(2);
  // How long a lease lasts once granted or extended: the lease duration
  // asked for, capped by the run's annotation.lease_seconds. A lease is
  // renewed a third of the way through, so clocks need not agree.
  absl::Duration lease_span_ ABSL_GUARDED_BY(mu_) = absl::Minutes(1);
  std::string lease_id_ ABSL_GUARDED_BY(mu_);                      // "" when none is held
  std::deque<bpo::v1::SampledPair> waiting_ ABSL_GUARDED_BY(mu_);  // leased, not shown
  std::optional<ShownPair> shown_ ABSL_GUARDED_BY(mu_);
  absl::Time due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Unix micros; atomic so that the service can check who is active without
  // waiting for a rater's coordinator call.
  std::atomic<int64_t> last_seen_us_{0};
  Counts counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bpo::annotator

#endif  // BPO_ANNOTATOR_HUMAN_RATER_H_
