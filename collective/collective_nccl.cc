// The NCCL backend (built only with BPO_HAVE_NCCL): CUDA tensors, in place.
//
// The collectives run on the tensors' data_ptr() through the CUDA runtime API.
// With a CUDA LibTorch (BPO_TORCH_HAS_CUDA: the wheel's 2.x) they are queued on
// LibTorch's current CUDA stream of this rank's device, behind the kernels that
// produced the tensors, with no extra synchronization. Debian's LibTorch 1.13
// is CPU-only and has no c10/cuda headers: there the communicator creates its
// own stream with cudaStreamCreate, a *blocking* one that waits for work on the
// legacy default stream and that such later work waits for. Every call returns
// only when the collective has completed on this rank.
//
// The communicator is non-blocking (ncclConfig_t.blocking = 0, NCCL >= 2.14):
// initialization and enqueueing never block without bound. A watchdog thread
// polls ncclCommGetAsyncError and calls ncclCommAbort on an asynchronous error
// or when an operation outlives options.timeout; the waiting call then returns
// (UNAVAILABLE or DEADLINE_EXCEEDED) and the communicator stays broken.
//
// Untested on a GPU in CI (see collective_nccl_test.cc, label gpu). NCCL does
// not allow two ranks of one communicator on the same GPU.
#include <cuda_runtime_api.h>
#include <nccl.h>

#ifdef BPO_TORCH_HAS_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "collective/collective_internal.h"
#include "common/logging.h"
#include "common/status_macros.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "bpo's NCCL backend needs NCCL >= 2.14 (non-blocking communicators)"
#endif

// Both return from the enclosing function (which returns absl::Status) with an
// error naming `where` (rank and host), file:line, the call and NCCL's or
// CUDA's own message. ncclInProgress is not an error (non-blocking
// communicator).
#define BPO_NCCL_CHECK(where, expr)                                                              \
  do {                                                                                           \
    const ncclResult_t bpo_nccl_result_ = (expr);                                                \
    if (bpo_nccl_result_ != ncclSuccess && bpo_nccl_result_ != ncclInProgress) {                 \
      return ::bpo::collective::internal::NcclError(bpo_nccl_result_, #expr, __FILE__, __LINE__, \
                                                    (where));                                    \
    }                                                                                            \
  } while (0)

#define BPO_CUDA_CHECK(where, expr)                                                              \
  do {                                                                                           \
    const cudaError_t bpo_cuda_result_ = (expr);                                                 \
    if (bpo_cuda_result_ != cudaSuccess) {                                                       \
      return ::bpo::collective::internal::CudaError(bpo_cuda_result_, #expr, __FILE__, __LINE__, \
                                                    (where));                                    \
    }                                                                                            \
  } while (0)

namespace bpo::collective::internal {

absl::Status NcclError(ncclResult_t result, const char* expr, const char* file, int line,
                       absl::string_view where) {
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (result) {
    case ncclSystemError:  // sockets, shared memory: usually a peer that went away
    case ncclRemoteError:
      code = absl::StatusCode::kUnavailable;
      break;
    case ncclInvalidArgument:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case ncclInvalidUsage:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    default:
      break;
  }
  const char* last = ncclGetLastError(nullptr);
  return absl::Status(
      code, absl::StrCat(where, ": ", file, ":", line, ": ", expr, ": ", ncclGetErrorString(result),
                         last != nullptr && *last != '\0' ? " (" : "", last != nullptr ? last : "",
                         last != nullptr && *last != '\0' ? ")" : ""));
}

absl::Status CudaError(cudaError_t result, const char* expr, const char* file, int line,
                       absl::string_view where) {
  return absl::InternalError(absl::StrCat(where, ": ", file, ":", line, ": ", expr, ": ",
                                          cudaGetErrorName(result), ": ",
                                          cudaGetErrorString(result)));
}

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clears the sticky "no driver" error
    return 0;
  }
  return count;
}

namespace {

bool NcclType(at::ScalarType type, ncclDataType_t* out) {
  switch (type) {
    case at::kFloat:
      *out = ncclFloat32;
      return true;
    case at::kDouble:
      *out = ncclFloat64;
      return true;
    case at::kHalf:
      *out = ncclFloat16;
      return true;
    case at::kBFloat16:
      *out = ncclBfloat16;
      return true;
    case at::kInt:
      *out = ncclInt32;
      return true;
    case at::kLong:
      *out = ncclInt64;
      return true;
    default:
      return false;
  }
}

class NcclCollective final : public Collective {
 public:
  NcclCollective(const CollectiveOptions& options, std::shared_ptr<RendezvousStore> store,
                 int device)
      : options_(options),
        where_(absl::StrCat(Where(options.rank, options.world_size), ", cuda:", device)),
        store_(std::move(store)),
        device_(device) {}

  ~NcclCollective() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (watchdog_.joinable()) watchdog_.join();
    cudaSetDevice(device_);
    if (comm_ != nullptr && !aborted_) {
      // Flushes outstanding work; a peer that never finishes gets the abort.
      ncclResult_t state = ncclCommFinalize(comm_);
      const absl::Time deadline = absl::Now() + options_.timeout;
      while (state == ncclInProgress && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(1));
        if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) state = ncclInternalError;
      }
      if (state == ncclSuccess) {
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
    }
    if (done_ != nullptr) cudaEventDestroy(done_);
    if (own_stream_ && stream_ != nullptr) cudaStreamDestroy(stream_);
    if (scratch_ != nullptr) cudaFree(scratch_);
    if (host_words_ != nullptr) cudaFreeHost(host_words_);
  }

  // Everything that can fail: CUDA resources, the unique id through the
  // store, ncclCommInitRankConfig within the timeout, then the watchdog.
  absl::Status Init() {
    BPO_CUDA_CHECK(where_, cudaSetDevice(device_));
#ifndef BPO_TORCH_HAS_CUDA
    BPO_CUDA_CHECK(where_, cudaStreamCreate(&stream_));
    own_stream_ = true;
#endif
    BPO_CUDA_CHECK(where_, cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    BPO_CUDA_CHECK(where_, cudaMalloc(reinterpret_cast<void**>(&scratch_), 2 * sizeof(uint64_t)));
    BPO_CUDA_CHECK(where_,
                   cudaMallocHost(reinterpret_cast<void**>(&host_words_), 2 * sizeof(uint64_t)));
    ncclUniqueId id;
    if (options_.rank == 0) BPO_NCCL_CHECK(where_, ncclGetUniqueId(&id));
    if (options_.world_size > 1 && options_.rank == 0) {
      BPO_RETURN_IF_ERROR(store_->Set("nccl_unique_id", std::string(id.internal, sizeof(id))));
    } else if (options_.world_size > 1) {
      BPO_ASSIGN_OR_RETURN(const std::string bytes, store_->Get("nccl_unique_id"));
      if (bytes.size() != sizeof(id)) {
        return absl::InternalError(absl::StrCat(where_, ": NCCL unique id of ", bytes.size(),
                                                " bytes in the store, expected ", sizeof(id)));
      }
      std::memcpy(id.internal, bytes.data(), sizeof(id));
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const absl::Time deadline = absl::Now() + options_.timeout;
    {
      absl::MutexLock lock(&mu_);
      const ncclResult_t started =
          ncclCommInitRankConfig(&comm_, options_.world_size, id, options_.rank, &config);
      if (started != ncclSuccess && started != ncclInProgress) {
        absl::Status status =
            NcclError(started, "ncclCommInitRankConfig", __FILE__, __LINE__, where_);
        AbortLocked(status);  // frees a half-made communicator
        return status;
      }
    }
    BPO_RETURN_IF_ERROR(WaitEnqueued("ncclCommInitRankConfig", deadline));
    watchdog_ = std::thread([this] { Watchdog(); });
    return absl::OkStatus();
  }

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }

  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override {
    return Reduce(tensors, OpKind::kAllReduceSum);
  }

  absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) override {
    absl::Status local = Validate(tensors, OpKind::kBroadcast, "broadcast");
    if (local.ok() && (root < 0 || root >= world_size())) {
      local = absl::InvalidArgumentError(
          absl::StrCat(where_, ": broadcast: root ", root, " outside [0, ", world_size(), ")"));
    }
    BPO_RETURN_IF_ERROR(Agree(OpKind::kBroadcast, root, tensors, local, "broadcast"));
    // Dtype-agnostic: bytes.
    return Launch(absl::StrCat("broadcast from rank ", root, " of ", DescribeTensors(tensors)),
                  [&]() -> absl::Status {
                    BPO_NCCL_CHECK(where_, ncclGroupStart());
                    for (at::Tensor& t : tensors) {
                      if (t.nbytes() == 0) continue;
                      BPO_RETURN_IF_ERROR(
                          GroupEndOnError(where_,
                                          ncclBroadcast(t.data_ptr(), t.data_ptr(), t.nbytes(),
                                                        ncclUint8, root, comm_, stream_),
                                          "ncclBroadcast", __LINE__));
                    }
                    BPO_NCCL_CHECK(where_, ncclGroupEnd());
                    return absl::OkStatus();
                  });
  }

  absl::Status Barrier() override {
    return Launch("barrier", [&]() -> absl::Status {
      BPO_NCCL_CHECK(where_,
                     ncclAllReduce(scratch_, scratch_, 1, ncclUint64, ncclSum, comm_, stream_));
      return absl::OkStatus();
    });
  }

 protected:
  absl::Status AllReduceMeanImpl(std::vector<at::Tensor>& tensors) override {
    return Reduce(tensors, OpKind::kAllReduceMean);
  }

 private:
  // Ends the open group before reporting a failed call inside it.
  static absl::Status GroupEndOnError(absl::string_view where, ncclResult_t result,
                                      const char* call, int line) {
    if (result == ncclSuccess || result == ncclInProgress) return absl::OkStatus();
    ncclGroupEnd();
    return NcclError(result, call, __FILE__, line, where);
  }

  absl::Status Reduce(std::vector<at::Tensor>& tensors, OpKind op) {
    const bool mean = op == OpKind::kAllReduceMean;
    const absl::string_view name = mean ? "all-reduce mean" : "all-reduce sum";
    BPO_RETURN_IF_ERROR(Agree(op, -1, tensors, Validate(tensors, op, name), name));
    return Launch(absl::StrCat(name, " of ", DescribeTensors(tensors)), [&]() -> absl::Status {
      BPO_NCCL_CHECK(where_, ncclGroupStart());
      for (at::Tensor& t : tensors) {
        ncclDataType_t type = ncclFloat32;
        NcclType(t.scalar_type(), &type);  // Validate() checked it
        if (t.numel() == 0) continue;
        BPO_RETURN_IF_ERROR(
            GroupEndOnError(where_,
                            ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), type,
                                          mean ? ncclAvg : ncclSum, comm_, stream_),
                            "ncclAllReduce", __LINE__));
      }
      BPO_NCCL_CHECK(where_, ncclGroupEnd());
      return absl::OkStatus();
    });
  }

  // Checks that need no peer: defined, dense, contiguous, on this rank's GPU.
  absl::Status Validate(const std::vector<at::Tensor>& tensors, OpKind op,
                        absl::string_view name) const {
    return ValidateTensors(tensors, op, where_, name, [this](const at::Tensor& t) -> std::string {
      if (!t.is_cuda() || t.device().index() != device_ || t.layout() != at::kStrided) {
        return absl::StrCat(
            "is on ", t.device().str(),
            ": the nccl backend takes dense tensors on this rank's device cuda:", device_);
      }
      return t.is_contiguous() ? "" : "is not contiguous";
    });
  }

  // As in the Gloo backend: max and ~min of the call signature over ranks.
  absl::Status Agree(OpKind op, int root, const std::vector<at::Tensor>& tensors,
                     const absl::Status& local, absl::string_view name) {
    if (!options_.check_shapes) return local;
    const uint64_t signature = CallSignature(op, root, tensors, local.ok());
    BPO_RETURN_IF_ERROR(Launch(
        absl::StrCat(name, ": shape check"),
        [&]() -> absl::Status {
          host_words_[0] = signature;
          host_words_[1] = ~signature;
          BPO_CUDA_CHECK(where_, cudaMemcpyAsync(scratch_, host_words_, 2 * sizeof(uint64_t),
                                                 cudaMemcpyHostToDevice, stream_));
          BPO_NCCL_CHECK(where_,
                         ncclAllReduce(scratch_, scratch_, 2, ncclUint64, ncclMax, comm_, stream_));
          return absl::OkStatus();
        },
        [&]() -> absl::Status {
          BPO_CUDA_CHECK(where_, cudaMemcpyAsync(host_words_, scratch_, 2 * sizeof(uint64_t),
                                                 cudaMemcpyDeviceToHost, stream_));
          return absl::OkStatus();
        }));
    if (!local.ok()) return local;
    if (host_words_[0] != ~host_words_[1]) return MismatchedCallError(where_, name, tensors, root);
    return absl::OkStatus();
  }

  absl::Status Broken(absl::string_view what) {
    absl::MutexLock lock(&mu_);
    return absl::Status(error_.code(), absl::StrCat(where_, ": ", what,
                                                    ": communicator aborted: ", error_.message()));
  }

  // Runs `enqueue` (NCCL calls) under mu_, waits until the non-blocking
  // communicator has queued them on stream_, runs `after` (CUDA work that must
  // follow them), then polls an event until the stream reaches it. Bounded by
  // options.timeout; the watchdog aborts the communicator on error or timeout.
  absl::Status Launch(absl::string_view what, const std::function<absl::Status()>& enqueue,
                      const std::function<absl::Status()>& after = nullptr) {
    if (aborted_) return Broken(what);
    const absl::Time deadline = absl::Now() + options_.timeout;
    {
      absl::MutexLock lock(&mu_);
      BPO_CUDA_CHECK(where_, cudaSetDevice(device_));
#ifdef BPO_TORCH_HAS_CUDA
      stream_ = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_)).stream();
#endif
      deadline_ = deadline;
      if (absl::Status status = enqueue(); !status.ok()) {
        AbortLocked(status);
        return status;
      }
    }
    BPO_RETURN_IF_ERROR(WaitEnqueued(what, deadline));
    {
      absl::MutexLock lock(&mu_);
      absl::Status status = after ? after() : absl::OkStatus();
      if (status.ok()) {
        const cudaError_t recorded = cudaEventRecord(done_, stream_);
        if (recorded != cudaSuccess) {
          status =
              CudaError(recorded, "cudaEventRecord(done_, stream_)", __FILE__, __LINE__, where_);
        }
      }
      if (!status.ok()) {
        AbortLocked(status);
        return status;
      }
    }
    for (int spins = 0;; ++spins) {
      const cudaError_t state = cudaEventQuery(done_);
      if (state == cudaSuccess) break;
      if (state != cudaErrorNotReady) {
        absl::Status status = CudaError(state, "cudaEventQuery(done_)", __FILE__, __LINE__, where_);
        absl::MutexLock lock(&mu_);
        AbortLocked(status);
        return status;
      }
      if (aborted_) return Broken(what);
      if (spins > 1000) absl::SleepFor(absl::Microseconds(50));
    }
    absl::MutexLock lock(&mu_);
    deadline_ = absl::InfiniteFuture();
    return absl::OkStatus();
  }

  // Polls the non-blocking communicator until it leaves ncclInProgress.
  absl::Status WaitEnqueued(absl::string_view what, absl::Time deadline) {
    while (true) {
      if (aborted_) return Broken(what);
      absl::MutexLock lock(&mu_);
      ncclResult_t state = ncclSuccess;
      const ncclResult_t queried = ncclCommGetAsyncError(comm_, &state);
      if (queried != ncclSuccess) state = queried;
      if (state == ncclSuccess) return absl::OkStatus();
      if (state != ncclInProgress) {
        absl::Status status = NcclError(state, "ncclCommGetAsyncError", __FILE__, __LINE__,
                                        absl::StrCat(where_, ": ", what));
        AbortLocked(status);
        return status;
      }
      if (absl::Now() > deadline) {
        absl::Status status = absl::DeadlineExceededError(
            absl::StrCat(where_, ": ", what, ": not done after ",
                         absl::FormatDuration(options_.timeout), " (is every rank running it?)"));
        AbortLocked(status);
        return status;
      }
      mu_.Unlock();
      absl::SleepFor(absl::Microseconds(20));
      mu_.Lock();
    }
  }

  void Watchdog() {
    const absl::Duration period =
        std::clamp(options_.timeout / 10, absl::Milliseconds(10), absl::Milliseconds(100));
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      mu_.AwaitWithTimeout(absl::Condition(&stop_), period);
      if (stop_ || aborted_) continue;
      ncclResult_t state = ncclSuccess;
      const ncclResult_t queried = ncclCommGetAsyncError(comm_, &state);
      if (queried != ncclSuccess) state = queried;
      if (state != ncclSuccess && state != ncclInProgress) {
        AbortLocked(
            NcclError(state, "ncclCommGetAsyncError (watchdog)", __FILE__, __LINE__, where_));
      } else if (absl::Now() > deadline_) {
        AbortLocked(absl::DeadlineExceededError(absl::StrCat(where_, ": collective not done after ",
                                                             absl::FormatDuration(options_.timeout),
                                                             " (watchdog)")));
      }
    }
  }

  void AbortLocked(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (aborted_) return;
    error_ = std::move(why);
    aborted_ = true;
    BPO_LOG(WARNING) << "aborting the NCCL communicator: " << error_;
    if (comm_ != nullptr) ncclCommAbort(comm_);
  }

  const CollectiveOptions options_;
  const std::string where_;  // "rank r/R on host, cuda:d"
  std::shared_ptr<RendezvousStore> store_;
  const int device_;
  // LibTorch's current stream at each Launch (BPO_TORCH_HAS_CUDA), else one
  // created in Init and owned.
  cudaStream_t stream_ = nullptr;
  bool own_stream_ = false;
  cudaEvent_t done_ = nullptr;
  uint64_t* scratch_ = nullptr;       // [2] on device_: shape check and barrier
  uint64_t* host_words_ = nullptr;    // [2] pinned
  std::atomic<bool> aborted_{false};  // written under mu_, read anywhere

  absl::Mutex mu_;  // serializes NCCL calls on comm_ with the watchdog's abort
  ncclComm_t comm_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();  // of the running call
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watchdog_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Collective>> CreateNcclCollective(
    const CollectiveOptions& options, std::shared_ptr<RendezvousStore> store) {
  const std::string where = Where(options.rank, options.world_size);
  if (store == nullptr && options.world_size > 1) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": nccl: no rendezvous store"));
  }
  const int devices = CudaDeviceCount();
  if (devices == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": nccl backend: no CUDA device is visible"));
  }
  const int device = options.cuda_device >= 0 ? options.cuda_device : options.rank % devices;
  if (device >= devices) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": cuda_device ", device, " but only ",
                                                   devices, " device(s) are visible"));
  }
  auto collective = std::make_unique<NcclCollective>(options, std::move(store), device);
  BPO_RETURN_IF_ERROR(collective->Init());
  return std::unique_ptr<Collective>(std::move(collective));
}

}  // namespace bpo::collective::internal
