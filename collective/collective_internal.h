// Internals shared by the collective backends (collective_gloo.cc,
// collective_nccl.cc) and their tests: rendezvous store, error mapping and
// the per-call shape signature. Not part of the learner's API.
#ifndef BPO_COLLECTIVE_COLLECTIVE_INTERNAL_H_
#define BPO_COLLECTIVE_COLLECTIVE_INTERNAL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "collective/collective.h"

namespace gloo::rendezvous {
class Store;
}  // namespace gloo::rendezvous

namespace bpo::collective::internal {

struct RendezvousAddress {
  enum class Kind { kFile, kTcp };
  Kind kind = Kind::kFile;
  std::string path;  // kFile
  std::string host;  // kTcp
  int port = 0;      // kTcp
};

// "file:/dir" or "tcp:host:port" (IPv6 hosts in brackets: "tcp:[::1]:29500").
absl::StatusOr<RendezvousAddress> ParseRendezvous(absl::string_view spec);

// This machine's hostname, for error messages.
const std::string& HostName();
// "rank 1/3 on host".
std::string Where(int rank, int world_size);

// The run's key-value store as Gloo sees it: keys prefixed with
// "<run_id>/<namespace>/", every wait (and get) bounded by options.timeout
// with millisecond precision. Rank 0 of a "tcp:" rendezvous also owns the
// store's server, which must outlive every peer's use of the store: keep this
// object alive as long as the communicator built on it.
class RendezvousStore {
 public:
  // Connects (and on rank 0 of "tcp:" serves) within options.timeout.
  static absl::StatusOr<std::shared_ptr<RendezvousStore>> Open(const CollectiveOptions& options);
  ~RendezvousStore();
  RendezvousStore(const RendezvousStore&) = delete;
  RendezvousStore& operator=(const RendezvousStore&) = delete;

  // A view of the store under "<run_id>/<name>/"; lives as long as this object.
  gloo::rendezvous::Store& Namespace(const std::string& name);

  // Status versions for callers outside Gloo (the NCCL unique id).
  absl::Status Set(const std::string& key, const std::string& value);
  absl::StatusOr<std::string> Get(const std::string& key);  // waits for the key

 private:
  struct State;
  explicit RendezvousStore(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Maps an exception from Gloo (or the store) to a Status naming the rank and
// the operation: timeouts give DEADLINE_EXCEEDED, I/O errors (a closed peer)
// UNAVAILABLE, an existing store key ALREADY_EXISTS, anything else INTERNAL.
absl::Status StatusFromException(const std::exception& e, absl::string_view what, int rank,
                                 int world_size);

enum class OpKind : int64_t { kAllReduceSum = 1, kAllReduceMean, kBroadcast, kBarrier };

// FNV-1a over (op, root, local_ok, and each tensor's dtype, device type and
// sizes): equal on all ranks iff they made the same call.
uint64_t CallSignature(OpKind op, int root, const std::vector<at::Tensor>& tensors, bool local_ok);

// "float32", "bfloat16", ... (LibTorch's name for dtypes without a short one).
std::string DtypeName(at::ScalarType type);
// "float32[3, 4], float64[5]" (at most the first 8), for messages.
std::string DescribeTensors(const std::vector<at::Tensor>& tensors);

// The dtypes both backends reduce: float32, float64, float16, bfloat16,
// int32, int64.
bool ReducibleType(at::ScalarType type);

// The checks that need no peer, shared by the backends: each tensor defined,
// placed where the backend wants it (`placement` returns what is wrong with a
// defined tensor, empty when nothing), of a reducible dtype for reductions and
// floating point for a mean. INVALID_ARGUMENT "<where>: <name>: tensor <i> ...".
absl::Status ValidateTensors(const std::vector<at::Tensor>& tensors, OpKind op,
                             absl::string_view where, absl::string_view name,
                             const std::function<std::string(const at::Tensor&)>& placement);

// The INVALID_ARGUMENT of a call whose signature differs across ranks.
absl::Status MismatchedCallError(absl::string_view where, absl::string_view name,
                                 const std::vector<at::Tensor>& tensors, int root);

absl::StatusOr<std::unique_ptr<Collective>> CreateGlooCollective(
    const CollectiveOptions& options, std::shared_ptr<RendezvousStore> store);

#ifdef BPO_HAVE_NCCL
// `store` may be null when world_size is 1 (a one-rank NCCL communicator; the
// GPU test uses it, CreateCollective never does).
absl::StatusOr<std::unique_ptr<Collective>> CreateNcclCollective(
    const CollectiveOptions& options, std::shared_ptr<RendezvousStore> store);
// Visible CUDA devices; 0 when the driver or runtime reports an error.
int CudaDeviceCount();
#endif

}  // namespace bpo::collective::internal

#endif  // BPO_COLLECTIVE_COLLECTIVE_INTERNAL_H_
