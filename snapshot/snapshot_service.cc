#include "snapshot/snapshot_service.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/rpc.h"

namespace bpo::snapshot {
namespace {

using bpo::v1::SnapshotChunk;
using bpo::v1::SnapshotInfo;

// Writes one snapshot's chunks, then finishes. The chunk in flight is a
// member so it outlives StartWrite until OnWriteDone.
class FetchReactor : public grpc::ServerWriteReactor<SnapshotChunk> {
 public:
  FetchReactor(absl::StatusOr<StoredSnapshot> snapshot, const bpo::v1::FetchSnapshotRequest& req) {
    if (!snapshot.ok()) {
      Finish(ToGrpcStatus(snapshot.status()));
      return;
    }
    snapshot_ = *std::move(snapshot);
    const uint64_t size = snapshot_.bytes->size();
    if (req.offset() > size) {
      Finish(ToGrpcStatus(absl::OutOfRangeError(absl::StrCat(
          "offset ", req.offset(), " is beyond the ", size, "-byte snapshot ", req.version()))));
      return;
    }
    offset_ = req.offset();
    chunk_bytes_ = req.max_chunk_bytes() == 0
                       ? kDefaultSnapshotChunkBytes
                       : std::min(req.max_chunk_bytes(), kMaxSnapshotChunkBytes);
    NextWrite();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "snapshot stream broken by the client"));
      return;
    }
    NextWrite();
  }

  void OnDone() override { delete this; }

 private:
  void NextWrite() {
    const uint64_t size = snapshot_.bytes->size();
    if (!first_ && offset_ >= size) {
      Finish(grpc::Status::OK);
      return;
    }
    chunk_.Clear();
    if (first_) *chunk_.mutable_info() = snapshot_.info;
    first_ = false;
    const uint64_t n = std::min<uint64_t>(chunk_bytes_, size - offset_);
    chunk_.set_offset(offset_);
    chunk_.set_data(snapshot_.bytes->data() + offset_, n);
    offset_ += n;
    StartWrite(&chunk_);
  }

  StoredSnapshot snapshot_;
  uint64_t offset_ = 0;
  uint32_t chunk_bytes_ = kDefaultSnapshotChunkBytes;
  bool first_ = true;
  SnapshotChunk chunk_;
};

// Codes after which a stream is worth resuming from where it broke.
bool IsBrokenStream(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

}  // namespace

absl::Status SnapshotServiceImpl::Authorize(const grpc::CallbackServerContext& context,
                                            const char* method) const {
  absl::StatusOr<Identity> caller = PeerIdentity(context, transport_);
  if (!caller.ok()) return caller.status();
  return RequireRole(*caller, {Role::kActor, Role::kLearner}, method);
}

grpc::ServerUnaryReactor* SnapshotServiceImpl::GetSnapshotInfo(
    grpc::CallbackServerContext* context, const bpo::v1::GetSnapshotInfoRequest* request,
    SnapshotInfo* response) {
  auto* reactor = context->DefaultReactor();
  if (absl::Status ok = Authorize(*context, "SnapshotService.GetSnapshotInfo"); !ok.ok()) {
    reactor->Finish(ToGrpcStatus(ok));
    return reactor;
  }
  auto snapshot = store_->Get(request->version());
  if (snapshot.ok()) *response = snapshot->info;
  reactor->Finish(ToGrpcStatus(snapshot.status()));
  return reactor;
}

grpc::ServerUnaryReactor* SnapshotServiceImpl::ListSnapshots(
    grpc::CallbackServerContext* context, const bpo::v1::ListSnapshotsRequest*,
    bpo::v1::ListSnapshotsResponse* response) {
  if (absl::Status ok = Authorize(*context, "SnapshotService.ListSnapshots"); !ok.ok()) {
    auto* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpcStatus(ok));
    return reactor;
  }
  for (SnapshotInfo& info : store_->List()) *response->add_snapshots() = std::move(info);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<SnapshotChunk>* SnapshotServiceImpl::FetchSnapshot(
    grpc::CallbackServerContext* context, const bpo::v1::FetchSnapshotRequest* request) {
  if (absl::Status ok = Authorize(*context, "SnapshotService.FetchSnapshot"); !ok.ok()) {
    return new FetchReactor(ok, *request);
  }
  ++fetches_started_;
  return new FetchReactor(store_->Get(request->version()), *request);
}

SnapshotClient::SnapshotClient(std::string address, std::string cache_dir,
                               SnapshotClientOptions options)
    : address_(std::move(address)), cache_dir_(std::move(cache_dir)), options_(options) {}

std::string SnapshotClient::What(absl::string_view method) const {
  return absl::StrCat("SnapshotService.", method, " at ", address_);
}

std::string SnapshotClient::CachePath(uint64_t version) const {
  return SnapshotStore::PayloadPath(cache_dir_, version);
}

SnapshotClient::Stats SnapshotClient::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::StatusOr<std::shared_ptr<bpo::v1::SnapshotService::Stub>> SnapshotClient::Stub() {
  absl::MutexLock lock(&mu_);
  if (stub_ == nullptr) {
    auto channel = Connect(address_, "snapshot service", options_.rpc_timeout, options_.transport,
                           Role::kLearner);
    if (!channel.ok()) return channel.status();
    stub_ = bpo::v1::SnapshotService::NewStub(*channel);
  }
  return stub_;
}

absl::StatusOr<SnapshotInfo> SnapshotClient::GetInfo(uint64_t version) {
  auto stub = Stub();
  if (!stub.ok()) return stub.status();
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  bpo::v1::GetSnapshotInfoRequest request;
  request.set_version(version);
  SnapshotInfo info;
  const grpc::Status s = (*stub)->GetSnapshotInfo(&context, request, &info);
  if (!s.ok()) return FromGrpcStatus(s, What("GetSnapshotInfo"));
  return info;
}

absl::StatusOr<std::vector<SnapshotInfo>> SnapshotClient::List() {
  auto stub = Stub();
  if (!stub.ok()) return stub.status();
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  bpo::v1::ListSnapshotsResponse response;
  const grpc::Status s = (*stub)->ListSnapshots(&context, {}, &response);
  if (!s.ok()) return FromGrpcStatus(s, What("ListSnapshots"));
  return std::vector<SnapshotInfo>(response.snapshots().begin(), response.snapshots().end());
}

std::vector<uint64_t> SnapshotClient::CachedVersions() const {
  std::vector<uint64_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(cache_dir_, ec)) {
    const std::string file = entry.path().filename().string();
    absl::string_view name = file;
    uint64_t version;
    if (absl::ConsumePrefix(&name, "snapshot-") && absl::ConsumeSuffix(&name, ".safetensors") &&
        absl::SimpleAtoi(name, &version)) {
      out.push_back(version);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status SnapshotClient::StreamFrom(bpo::v1::SnapshotService::Stub* stub,
                                        const SnapshotInfo& info, std::string* bytes) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  bpo::v1::FetchSnapshotRequest request;
  request.set_version(info.version());
  request.set_offset(bytes->size());
  request.set_max_chunk_bytes(options_.max_chunk_bytes);
  {
    absl::MutexLock lock(&mu_);
    ++stats_.streams;
  }
  auto reader = stub->FetchSnapshot(&context, request);
  SnapshotChunk chunk;
  absl::Status error;
  int64_t streamed = 0;
  for (bool first = true; error.ok() && reader->Read(&chunk); first = false) {
    if (first && (chunk.info().sha256() != info.sha256() ||
                  chunk.info().size_bytes() != info.size_bytes())) {
      error = absl::AbortedError(absl::StrCat("snapshot ", info.version(), " changed on ", address_,
                                              " during the fetch (sha256 ", info.sha256(),
                                              ", then '", chunk.info().sha256(), "')"));
    } else if (chunk.offset() != bytes->size()) {
      error = absl::DataLossError(absl::StrCat("snapshot ", info.version(), " from ", address_,
                                               ": chunk at offset ", chunk.offset(), ", expected ",
                                               bytes->size()));
    } else if (bytes->size() + chunk.data().size() > info.size_bytes()) {
      error = absl::DataLossError(absl::StrCat("snapshot ", info.version(), " from ", address_,
                                               ": chunks run past the ", info.size_bytes(),
                                               "-byte payload"));
    } else {
      bytes->append(chunk.data());
      streamed += static_cast<int64_t>(chunk.data().size());
    }
  }
  if (!error.ok()) context.TryCancel();
  const grpc::Status s = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    stats_.bytes_streamed += streamed;
  }
  if (!error.ok()) return error;
  return FromGrpcStatus(s, What("FetchSnapshot"));
}

absl::StatusOr<std::string> SnapshotClient::Fetch(uint64_t version,
                                                  absl::string_view expected_sha256) {
  auto stub = Stub();
  if (!stub.ok()) return stub.status();
  auto info = GetInfo(version);
  if (!info.ok()) return info.status();
  if (!expected_sha256.empty() && info->sha256() != expected_sha256) {
    return absl::DataLossError(absl::StrCat("snapshot ", version, " at ", address_, " has sha256 ",
                                            info->sha256(), ", expected ", expected_sha256));
  }
  if (info->size_bytes() > options_.max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("snapshot ", version, " at ", address_, " claims ", info->size_bytes(),
                     " bytes, over the limit of ", options_.max_bytes,
                     " (coordinator.snapshot_bytes_max): refused"));
  }

  const std::string path = CachePath(version);
  std::error_code size_ec;
  const uintmax_t cached_size = std::filesystem::file_size(path, size_ec);
  if (!size_ec) {
    // Read only a cached file of the announced size.
    absl::StatusOr<std::string> cached = cached_size == info->size_bytes()
                                             ? ReadWholeFile(path)
                                             : absl::StatusOr<std::string>(std::string());
    if (cached.ok() && cached->size() == info->size_bytes() &&
        Sha256Hex(*cached) == info->sha256()) {
      absl::MutexLock lock(&mu_);
      ++stats_.cache_hits;
      return cached;
    }
    BPO_LOG(WARNING) << path << " does not match snapshot " << version << " at " << address_ << " ("
                     << info->size_bytes() << " bytes, sha256 " << info->sha256()
                     << "): fetching it again";
    absl::MutexLock lock(&mu_);
    ++stats_.cache_rejected;
  }

  std::string bytes;
  bytes.reserve(info->size_bytes());
  absl::Status s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    s = StreamFrom(stub->get(), *info, &bytes);
    const bool complete = s.ok() && bytes.size() == info->size_bytes();
    if (complete || attempt == 1 || !(s.ok() || IsBrokenStream(s))) break;
    BPO_LOG(WARNING) << "snapshot " << version << " stream broke at byte " << bytes.size() << " of "
                     << info->size_bytes() << " (" << s << "); resuming";
    absl::MutexLock lock(&mu_);
    ++stats_.resumes;
  }
  if (!s.ok()) return s;
  if (bytes.size() != info->size_bytes()) {
    return absl::DataLossError(absl::StrCat("snapshot ", version, " from ", address_, ": got ",
                                            bytes.size(), " of ", info->size_bytes(), " bytes"));
  }
  const std::string got = Sha256Hex(bytes);
  if (got != info->sha256()) {
    return absl::DataLossError(absl::StrCat("snapshot ", version, " from ", address_,
                                            ": sha256 mismatch: expected ", info->sha256(),
                                            ", got ", got));
  }
  std::error_code ec;
  std::filesystem::create_directories(cache_dir_, ec);
  if (absl::Status w = WriteFileAtomically(path, bytes); !w.ok()) {
    BPO_LOG(WARNING) << "snapshot " << version << " is not cached: " << w;
  }
  return bytes;
}

}  // namespace bpo::snapshot
