#include "actor/actor.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "snapshot/snapshot.h"

namespace bpo::actor {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> Actor::Create(const model::Policy* policy,
                                                     coordinator::CoordinatorClient* client,
                                                     ActorOptions options,
                                                     metrics::Registry* registry) {
  std::unique_ptr<Actor> a(new Actor());
  a->policy_ = policy;
  a->client_ = client;
  a->options_ = std::move(options);
  metrics::Registry* r = registry;
  BPO_ASSIGN_OR_RETURN(auto* pairs, r->AddCounter("bpo_actor_pairs_total",
                                                  "Pairs sampled and accepted by the coordinator"));
  BPO_ASSIGN_OR_RETURN(auto* dropped, r->AddCounter("bpo_actor_pairs_dropped_total",
                                                    "Prompts whose two responses were identical"));
  BPO_ASSIGN_OR_RETURN(
      auto* tokens, r->AddCounter("bpo_actor_generated_tokens_total", "Response tokens generated"));
  BPO_ASSIGN_OR_RETURN(auto* bytes, r->AddCounter("bpo_actor_snapshot_fetch_bytes_total",
                                                  "Snapshot bytes streamed from the learner"));
  BPO_ASSIGN_OR_RETURN(auto* sample, r->AddHistogram("bpo_actor_sample_seconds",
                                                     "Time to sample one lease of prompts",
                                                     metrics::ExponentialBuckets(0.01, 2, 16)));
  BPO_ASSIGN_OR_RETURN(auto* fetch, r->AddHistogram("bpo_actor_snapshot_fetch_seconds",
                                                    "Time to fetch, verify and load a snapshot",
                                                    metrics::ExponentialBuckets(0.001, 2.5, 14)));
  BPO_ASSIGN_OR_RETURN(
      auto* version, r->AddGauge("bpo_actor_snapshot_version", "Behavior snapshot version loaded"));
  a->pairs_ = &pairs->Add({});
  a->dropped_ = &dropped->Add({});
  a->tokens_ = &tokens->Add({});
  a->fetch_bytes_ = &bytes->Add({});
  a->sample_seconds_ = &sample->Add({});
  a->fetch_seconds_ = &fetch->Add({});
  a->version_gauge_ = &version->Add({});
  a->version_gauge_->Set(-1);
  return a;
}

absl::Status Actor::LoadSnapshot(const bpo::v1::LeasePromptsResponse& lease) {
  const auto t0 = std::chrono::steady_clock::now();
  if (snapshots_ == nullptr || snapshots_->address() != lease.snapshot_address()) {
    snapshot::SnapshotClientOptions so;
    so.rpc_timeout = options_.rpc_deadline;
    so.transport = options_.transport;
    so.max_bytes = options_.snapshot_bytes_max;
    snapshots_ = std::make_unique<snapshot::SnapshotClient>(lease.snapshot_address(),
                                                            options_.snapshot_cache_dir, so);
  }
  const int64_t before = snapshots_->stats().bytes_streamed;
  // The learner's shared directory first, when this actor sees it (one
  // machine, or a shared filesystem): no streaming, and no wait for a
  // restarted learner to re-report its address. The bytes must hash to what
  // the coordinator recorded; otherwise the snapshot service streams them.
  // Only a regular file of the recorded size is read (never /dev/zero).
  std::string bytes;
  std::error_code ec;
  const std::string& path = lease.snapshot_path();
  if (!path.empty() && std::filesystem::is_regular_file(path, ec) &&
      std::filesystem::file_size(path, ec) == lease.snapshot().size_bytes() && !ec &&
      lease.snapshot().size_bytes() <= options_.snapshot_bytes_max) {
    absl::StatusOr<std::string> file = ReadWholeFile(path);
    if (file.ok() && Sha256Hex(*file) == lease.snapshot().sha256()) bytes = std::move(*file);
  }
  if (bytes.empty()) {
    BPO_ASSIGN_OR_RETURN(bytes,
                         snapshots_->Fetch(lease.snapshot_version(), lease.snapshot().sha256()));
  }
  BPO_ASSIGN_OR_RETURN(snapshot::DecodedSnapshot decoded,
                       snapshot::DecodeSnapshot(bytes, *policy_->model,
                                                absl::StrCat("snapshot ", lease.snapshot_version(),
                                                             " from ", lease.snapshot_address())));
  adapter_ = std::make_unique<model::MergedLora>(std::move(decoded.merged));
  version_ = static_cast<int64_t>(lease.snapshot_version());
  version_gauge_->Set(static_cast<double>(version_));
  fetch_bytes_->Increment(static_cast<double>(snapshots_->stats().bytes_streamed - before));
  fetch_seconds_->Observe(SecondsSince(t0));
  BPO_LOG(INFO) << "loaded behavior snapshot v" << version_ << " (" << bytes.size()
                << " bytes, sha256 " << lease.snapshot().sha256().substr(0, 12) << "…) in "
                << SecondsSince(t0) << " s";
  return absl::OkStatus();
}

absl::Status Actor::Run() {
  while (!options_.stop()) {
    BPO_ASSIGN_OR_RETURN(bpo::v1::LeasePromptsResponse lease,
                         client_->LeasePrompts(options_.prompts_per_lease));
    // The loop came round: the leases it holds may be extended until the
    // next round (coordinator.stall_seconds).
    client_->MarkProgress();
    if (lease.work().empty()) {
      BPO_ASSIGN_OR_RETURN(bool done, client_->RunDone());
      if (done) return absl::OkStatus();
      coordinator::SleepRetryAfter(lease.retry_after());
      continue;
    }
    client_->HoldLease(lease.lease().lease_id());
    if (static_cast<int64_t>(lease.snapshot_version()) != version_) {
      if (absl::Status s = LoadSnapshot(lease); !s.ok()) {
        // Give the prompts back so that another actor (or a later try) takes them.
        client_->ReleaseLease(lease.lease().lease_id());
        BPO_LOG(WARNING) << "cannot load snapshot v" << lease.snapshot_version() << ": " << s;
        if (s.code() == absl::StatusCode::kDataLoss ||
            s.code() == absl::StatusCode::kInvalidArgument) {
          return s;
        }
        absl::SleepFor(absl::Seconds(1));
        continue;
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<bpo::v1::PromptWork> work(lease.work().begin(), lease.work().end());
    BPO_ASSIGN_OR_RETURN(SampledBatch batch,
                         SamplePairs(*policy_->model, *policy_->tokenizer, adapter_.get(), work,
                                     lease.snapshot_version(), options_.sampler));
    sample_seconds_->Observe(SecondsSince(t0));
    tokens_->Increment(static_cast<double>(batch.generated_tokens));
    bpo::v1::SubmitPairsRequest submit;
    submit.set_lease_id(lease.lease().lease_id());
    for (auto& p : batch.pairs) {
      p.set_run_id(options_.run_id);
      *submit.add_pairs() = std::move(p);
    }
    for (const auto& id : batch.dropped) submit.add_dropped_pair_ids(id);
    BPO_ASSIGN_OR_RETURN(bpo::v1::SubmitPairsResponse result, client_->SubmitPairs(submit));
    client_->ReleaseLease(lease.lease().lease_id());
    int accepted = 0, refused = 0;
    for (const auto& r : result.results()) {
      if (r.outcome() == bpo::v1::ItemStatus::REJECTED) {
        ++refused;
        BPO_LOG(WARNING) << "pair " << r.id() << " refused: " << r.message();
      } else if (r.outcome() == bpo::v1::ItemStatus::ACCEPTED) {
        ++accepted;
      }
    }
    pairs_->Increment(accepted - static_cast<int>(batch.dropped.size()));
    dropped_->Increment(static_cast<double>(batch.dropped.size()));
    BPO_LOG(INFO) << "sampled " << batch.pairs.size() << " pairs from snapshot v"
                  << lease.snapshot_version() << " in " << SecondsSince(t0) << " s ("
                  << batch.dropped.size() << " identical dropped, " << refused << " refused)";
  }
  return absl::OkStatus();
}

}  // namespace bpo::actor
