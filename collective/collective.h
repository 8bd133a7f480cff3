// Data-parallel collectives for the learner: R ranks each take B/R pairs and
// all-reduce the LoRA gradients before each member's optimizer step.
//
//   BPO_ASSIGN_OR_RETURN(std::unique_ptr<Collective> comm,
//                        CreateCollective(options, Backend::kAuto));
//   std::vector<at::Tensor> grads = ...;  // same shapes, dtypes, order on every rank
//   BPO_RETURN_IF_ERROR(comm->AllReduceMean(grads));
//
// CPU tensors go through Gloo (TCP transport), CUDA tensors through NCCL (when
// bpo is built with it: BPO_HAVE_NCCL). Ranks meet through a rendezvous store:
//   "file:/shared/dir"  a directory every rank can read and write (gloo's
//                       FileStore; NFS works);
//   "tcp:host:port"     rank 0 serves a small key-value store on host:port.
// Keys are prefixed with run_id: a file store directory may be reused by runs
// with distinct run_ids, never by two runs with the same one.
//
// Every call blocks until the operation is complete on this rank and is
// bounded by options.timeout: a dead or stuck peer gives DEADLINE_EXCEEDED or
// UNAVAILABLE, never a hang. After such an error the communicator is broken and
// every later call fails with the same code; create a new one (new run_id).
// Errors name this rank, the world size and the operation.
//
// Process-wide side effect: creating a Gloo communicator sets SIGPIPE to
// SIG_IGN when it is SIG_DFL (Gloo writes to sockets with writev, and a peer
// that died would otherwise kill this process).
#ifndef BPO_COLLECTIVE_COLLECTIVE_H_
#define BPO_COLLECTIVE_COLLECTIVE_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace bpo::collective {

struct CollectiveOptions {
  int rank = 0;
  int world_size = 1;
  std::string rendezvous;  // "file:/shared/dir" or "tcp:host:port" (rank 0 hosts)
  std::string run_id;      // namespaces the store keys; unique per run
  // Bounds rendezvous and every operation.
  absl::Duration timeout = absl::Minutes(5);
  // Address (or hostname) this rank's Gloo pairs listen on; peers must reach it.
  std::string interface_host = "127.0.0.1";
  // Before each operation, check with one tiny extra all-reduce that every rank
  // passed the same shapes and dtypes (and root); a mismatch gives
  // INVALID_ARGUMENT on every rank instead of garbage or a timeout.
  bool check_shapes = true;
  // NCCL: the CUDA device of this rank; -1 picks rank % device count. Tensors
  // given to NCCL must live on it.
  int cuda_device = -1;
};

enum class Backend {
  kAuto,  // Gloo for CPU tensors, plus NCCL for CUDA tensors when built with NCCL
          // and a GPU is visible (every rank must see one, or none)
  kGloo,  // CPU tensors only
  kNccl,  // CUDA tensors only; UNIMPLEMENTED when bpo is built without NCCL
};

// "auto", "gloo" or "nccl".
absl::StatusOr<Backend> ParseBackend(absl::string_view name);
absl::string_view BackendName(Backend backend);

// One per process; thread-compatible (calls must not overlap). All ranks must
// make the same calls in the same order.
class Collective {
 public:
  virtual ~Collective() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // In place: every tensor becomes the element-wise sum over ranks. All ranks
  // pass tensors of identical shapes and dtypes in the same order, all on CPU
  // or all on this rank's CUDA device. Dtypes: float32, float64, float16,
  // bfloat16, int32, int64 (reduced-precision sums accumulate in their own
  // dtype). Gloo flattens the tensors of each dtype into one buffer (copy in,
  // reduce, copy out; a single contiguous tensor is reduced in place); NCCL
  // reduces contiguous tensors in place in one group call.
  virtual absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) = 0;

  // The sum divided by world_size(); floating-point tensors only.
  absl::Status AllReduceMean(std::vector<at::Tensor>& tensors);

  // In place: every rank's tensors become root's.
  virtual absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) = 0;

  // Returns once every rank has entered it.
  virtual absl::Status Barrier() = 0;

 protected:
  // AllReduceMean after its dtype check. Default: AllReduceSum, then div_.
  // NCCL overrides it (ncclAvg): a CPU-only LibTorch cannot divide CUDA tensors.
  virtual absl::Status AllReduceMeanImpl(std::vector<at::Tensor>& tensors);
};

// world_size 1: a no-op communicator (rendezvous may be empty). Otherwise
// rendezvous through options.rendezvous and connect all ranks; blocks until
// every rank has joined or options.timeout passes (DEADLINE_EXCEEDED).
// INVALID_ARGUMENT for a malformed rendezvous string, rank or world size.
absl::StatusOr<std::unique_ptr<Collective>> CreateCollective(const CollectiveOptions& options,
                                                             Backend backend = Backend::kAuto);

}  // namespace bpo::collective

#endif  // BPO_COLLECTIVE_COLLECTIVE_H_
