// SnapshotService (proto/bpo/v1/snapshot.proto) over a SnapshotStore, hosted
// by learner rank 0, and the client actors use to fetch, verify and cache
// snapshots.
#ifndef BPO_SNAPSHOT_SNAPSHOT_SERVICE_H_
#define BPO_SNAPSHOT_SNAPSHOT_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bpo/v1/snapshot.grpc.pb.h"
#include "common/transport.h"
#include "snapshot/snapshot.h"

namespace bpo::snapshot {

// Chunk size when the request leaves it to the server.
inline constexpr uint32_t kDefaultSnapshotChunkBytes = 1u << 20;
// Larger requested chunks are clamped to this (well under the 64 MiB message
// limit of common/rpc.h's channels).
inline constexpr uint32_t kMaxSnapshotChunkBytes = 16u << 20;

// Serves the store's snapshots; the store must outlive the service. A stream
// holds a reference to its payload, so a version dropped from the store
// mid-stream still completes. Only actor and learner identities (or any
// peer of a plaintext transport) are served; others get PERMISSION_DENIED.
class SnapshotServiceImpl final : public bpo::v1::SnapshotService::CallbackService {
 public:
  SnapshotServiceImpl(const SnapshotStore* store, TransportSecurity transport)
      : store_(store), transport_(std::move(transport)) {}

  // NOT_FOUND names the version and the versions held.
  grpc::ServerUnaryReactor* GetSnapshotInfo(grpc::CallbackServerContext* context,
                                            const bpo::v1::GetSnapshotInfoRequest* request,
                                            bpo::v1::SnapshotInfo* response) override;
  grpc::ServerUnaryReactor* ListSnapshots(grpc::CallbackServerContext* context,
                                          const bpo::v1::ListSnapshotsRequest* request,
                                          bpo::v1::ListSnapshotsResponse* response) override;
  // Chunks of min(max_chunk_bytes or 1 MiB, 16 MiB, remaining) bytes from
  // request.offset; the first carries the info (an offset equal to the size
  // gives one chunk with the info and no data). NOT_FOUND for an unknown
  // version, OUT_OF_RANGE for an offset beyond the payload.
  grpc::ServerWriteReactor<bpo::v1::SnapshotChunk>* FetchSnapshot(
      grpc::CallbackServerContext* context, const bpo::v1::FetchSnapshotRequest* request) override;

  // FetchSnapshot calls accepted so far (resumed streams count again).
  int64_t fetches_started() const { return fetches_started_.load(); }

 private:
  // OK when the caller may read snapshots.
  absl::Status Authorize(const grpc::CallbackServerContext& context, const char* method) const;

  const SnapshotStore* store_;
  const TransportSecurity transport_;
  std::atomic<int64_t> fetches_started_{0};
};

struct SnapshotClientOptions {
  // Deadline of every call: GetSnapshotInfo, ListSnapshots, each
  // FetchSnapshot stream (a resumed stream gets a new one), and connecting.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Largest chunk asked for; 0 lets the server choose (1 MiB).
  uint32_t max_chunk_bytes = 0;
  // How to connect; the server must hold a learner certificate.
  TransportSecurity transport;
  // A snapshot the server says is larger is refused (RESOURCE_EXHAUSTED)
  // before anything is allocated (coordinator.snapshot_bytes_max).
  uint64_t max_bytes = uint64_t{16} << 30;
};

// Fetches snapshots from one SnapshotService and caches them in a directory
// as <cache_dir>/snapshot-<version>.safetensors. Thread-safe.
//
// The server's SnapshotInfo is the authority: a cached file is used only when
// its size and sha256 match it, and a stale or corrupt cached file (another
// run's snapshot of the same version, a torn copy) is replaced by a fresh
// fetch. Streamed bytes that do not match the info are DATA_LOSS and never
// cached.
class SnapshotClient {
 public:
  SnapshotClient(std::string address, std::string cache_dir, SnapshotClientOptions options = {});

  // The verified payload of `version`, from the cache or streamed (resuming
  // once from the last offset if the stream breaks), then cached atomically
  // (a cache write failure is logged, not returned). When expected_sha256 is
  // given (e.g. the coordinator's SnapshotInfo) and the server holds other
  // bytes, DATA_LOSS. Errors: NOT_FOUND (version not held), DATA_LOSS (size
  // or sha256 mismatch, naming the version and the expected and got hashes),
  // UNAVAILABLE naming the address (unreachable server).
  absl::StatusOr<std::string> Fetch(uint64_t version, absl::string_view expected_sha256 = {});
  absl::StatusOr<bpo::v1::SnapshotInfo> GetInfo(uint64_t version);
  absl::StatusOr<std::vector<bpo::v1::SnapshotInfo>> List();

  // Versions with a payload file in the cache (unverified), ascending: what
  // an actor reports as WorkerInfo.cached_snapshots.
  std::vector<uint64_t> CachedVersions() const;
  std::string CachePath(uint64_t version) const;

  struct Stats {
    int64_t cache_hits = 0;
    int64_t cache_rejected = 0;  // cached file present but not matching the server's info
    int64_t streams = 0;         // FetchSnapshot calls, resumes included
    int64_t resumes = 0;
    int64_t bytes_streamed = 0;
  };
  Stats stats() const;
  const std::string& address() const { return address_; }

 private:
  absl::StatusOr<std::shared_ptr<bpo::v1::SnapshotService::Stub>> Stub();
  // One FetchSnapshot stream from bytes->size(), appending to `bytes`.
  absl::Status StreamFrom(bpo::v1::SnapshotService::Stub* stub, const bpo::v1::SnapshotInfo& info,
                          std::string* bytes);
  std::string What(absl::string_view method) const;

  const std::string address_;
  const std::string cache_dir_;
  const SnapshotClientOptions options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<bpo::v1::SnapshotService::Stub> stub_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bpo::snapshot

#endif  // BPO_SNAPSHOT_SNAPSHOT_SERVICE_H_
