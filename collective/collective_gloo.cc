// The Gloo backend: CPU tensors over gloo's TCP transport, ring all-reduce
// (gloo::allreduce with a typed reduce function), broadcast and barrier, each
// bounded by the context's timeout. Any exception from Gloo breaks the
// communicator: it closes its connections, so peers fail fast instead of
// waiting out their timeout, and every later call returns the same error.
#include <ATen/core/grad_mode.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "collective/collective_internal.h"
#include "common/status_macros.h"
#include "gloo/allreduce.h"
#include "gloo/barrier.h"
#include "gloo/broadcast.h"
#include "gloo/rendezvous/context.h"
#include "gloo/transport/tcp/device.h"

namespace bpo::collective::internal {
namespace {

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

template <typename T>
void SumInto(void* out, const void* a, const void* b, size_t n) {
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
}

template <typename T>
void MaxInto(void* out, const void* a, const void* b, size_t n) {
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) o[i] = x[i] < y[i] ? y[i] : x[i];
}

void IgnoreSigpipeIfDefault() {
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
}

class GlooCollective final : public Collective {
 public:
  GlooCollective(const CollectiveOptions& options, std::shared_ptr<RendezvousStore> store,
                 std::shared_ptr<gloo::transport::Device> device,
                 std::shared_ptr<gloo::rendezvous::Context> context)
      : options_(options),
        timeout_(absl::ToChronoMilliseconds(options.timeout)),
        store_(std::move(store)),
        device_(std::move(device)),
        context_(std::move(context)) {}

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }

  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override {
    return Reduce(tensors, OpKind::kAllReduceSum);
  }

  absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) override {
    BPO_RETURN_IF_ERROR(Usable("broadcast"));
    absl::Status local = Validate(tensors, OpKind::kBroadcast, "broadcast");
    if (local.ok() && (root < 0 || root >= world_size())) {
      local =
          absl::InvalidArgumentError(absl::StrCat(Where(rank(), world_size()), ": broadcast: root ",
                                                  root, " outside [0, ", world_size(), ")"));
    }
    BPO_RETURN_IF_ERROR(Agree(OpKind::kBroadcast, root, tensors, local, "broadcast"));
    return Run(absl::StrCat("broadcast from rank ", root, " of ", DescribeTensors(tensors)), [&] {
      at::NoGradGuard no_grad;
      if (tensors.size() == 1 && tensors[0].is_contiguous()) {
        if (tensors[0].nbytes() > 0)
          BroadcastBytes(tensors[0].data_ptr(), tensors[0].nbytes(), root);
        return;
      }
      size_t total = 0;
      for (const at::Tensor& t : tensors) total += t.nbytes();
      if (total == 0) return;
      at::Tensor buffer = at::empty({static_cast<int64_t>(total)}, at::kByte);
      auto* bytes = static_cast<char*>(buffer.data_ptr());
      size_t offset = 0;
      if (rank() == root) {
        for (const at::Tensor& t : tensors) {
          std::memcpy(bytes + offset, t.contiguous().data_ptr(), t.nbytes());
          offset += t.nbytes();
        }
      }
      BroadcastBytes(bytes, total, root);
      if (rank() == root) return;
      offset = 0;
      for (at::Tensor& t : tensors) {
        if (t.is_contiguous()) {
          std::memcpy(t.data_ptr(), bytes + offset, t.nbytes());
        } else {
          t.copy_(at::from_blob(bytes + offset, t.sizes(), t.options()));
        }
        offset += t.nbytes();
      }
    });
  }

  absl::Status Barrier() override {
    BPO_RETURN_IF_ERROR(Usable("barrier"));
    return Run("barrier", [&] {
      gloo::BarrierOptions options(context_);
      options.setTimeout(timeout_);
      gloo::barrier(options);
    });
  }

 protected:
  absl::Status AllReduceMeanImpl(std::vector<at::Tensor>& tensors) override {
    return Reduce(tensors, OpKind::kAllReduceMean);
  }

 private:
  absl::Status Reduce(std::vector<at::Tensor>& tensors, OpKind op) {
    const absl::string_view name =
        op == OpKind::kAllReduceMean ? "all-reduce mean" : "all-reduce sum";
    BPO_RETURN_IF_ERROR(Usable(name));
    BPO_RETURN_IF_ERROR(Agree(op, -1, tensors, Validate(tensors, op, name), name));
    // One flat buffer per dtype, in order of first appearance.
    std::vector<std::pair<at::ScalarType, std::vector<size_t>>> groups;
    for (size_t i = 0; i < tensors.size(); ++i) {
      auto group = std::find_if(groups.begin(), groups.end(),
                                [&](const auto& g) { return g.first == tensors[i].scalar_type(); });
      if (group == groups.end())
        group = groups.insert(groups.end(), {tensors[i].scalar_type(), {}});
      group->second.push_back(i);
    }
    return Run(absl::StrCat(name, " of ", DescribeTensors(tensors)), [&] {
      at::NoGradGuard no_grad;
      for (const auto& [type, members] : groups) {
        at::Tensor& first = tensors[members[0]];
        if (members.size() == 1 && first.is_contiguous()) {
          if (first.numel() > 0) AllreduceSum(type, first.data_ptr(), first.numel());
          continue;
        }
        std::vector<at::Tensor> flat;
        for (size_t i : members) flat.push_back(tensors[i].reshape({-1}));
        at::Tensor buffer = at::cat(flat);
        if (buffer.numel() == 0) continue;
        AllreduceSum(type, buffer.data_ptr(), buffer.numel());
        int64_t offset = 0;
        for (size_t i : members) {
          at::Tensor& t = tensors[i];
          t.copy_(buffer.narrow(0, offset, t.numel()).view(t.sizes()));
          offset += t.numel();
        }
      }
      if (op == OpKind::kAllReduceMean) {
        for (at::Tensor& t : tensors) t.div_(world_size());
      }
    });
  }

  absl::Status Usable(absl::string_view name) const {
    if (broken_.ok()) return broken_;
    return absl::Status(broken_.code(), absl::StrCat(Where(rank(), world_size()), ": ", name,
                                                     ": communicator broken by an earlier error: ",
                                                     broken_.message()));
  }

  // Checks that need no peer: defined, strided CPU tensors of a supported dtype.
  absl::Status Validate(const std::vector<at::Tensor>& tensors, OpKind op,
                        absl::string_view name) const {
    return ValidateTensors(
        tensors, op, Where(rank(), world_size()), name, [](const at::Tensor& t) -> std::string {
          if (t.device().is_cpu() && t.layout() == at::kStrided) return "";
          return absl::StrCat("is on ", t.device().str(),
                              ": the gloo backend takes dense CPU tensors (CUDA ones need NCCL)");
        });
  }

  // With check_shapes, exchanges the call signature first, so that a call
  // that differs across ranks (or fails validation on some) gives
  // INVALID_ARGUMENT everywhere. Returns `local` when it is an error.
  absl::Status Agree(OpKind op, int root, const std::vector<at::Tensor>& tensors,
                     const absl::Status& local, absl::string_view name) {
    if (!options_.check_shapes) return local;
    const uint64_t signature = CallSignature(op, root, tensors, local.ok());
    uint64_t words[2] = {signature, ~signature};  // max and ~min over ranks
    BPO_RETURN_IF_ERROR(Run(absl::StrCat(name, ": shape check"), [&] {
      gloo::AllreduceOptions options(context_);
      options.setOutput(words, 2);
      options.setReduceFunction(&MaxInto<uint64_t>);
      options.setTimeout(timeout_);
      gloo::allreduce(options);
    }));
    if (!local.ok()) return local;
    if (words[0] != ~words[1])
      return MismatchedCallError(Where(rank(), world_size()), name, tensors, root);
    return absl::OkStatus();
  }

  // Runs `body`; an exception breaks the communicator.
  absl::Status Run(absl::string_view what, const std::function<void()>& body) {
    try {
      body();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      broken_ = StatusFromException(e, what, rank(), world_size());
    }
    try {
      context_->closeConnections();
    } catch (const std::exception&) {
      // Already failing; the first error is the one to report.
    }
    return broken_;
  }

  template <typename T>
  void AllreduceTyped(void* data, size_t elements) {
    gloo::AllreduceOptions options(context_);
    options.setOutput(static_cast<T*>(data), elements);
    options.setReduceFunction(static_cast<ReduceFn>(&SumInto<T>));
    options.setTimeout(timeout_);
    gloo::allreduce(options);
  }

  void AllreduceSum(at::ScalarType type, void* data, size_t elements) {
    switch (type) {
      case at::kFloat:
        return AllreduceTyped<float>(data, elements);
      case at::kDouble:
        return AllreduceTyped<double>(data, elements);
      case at::kHalf:
        return AllreduceTyped<at::Half>(data, elements);
      case at::kBFloat16:
        return AllreduceTyped<at::BFloat16>(data, elements);
      case at::kInt:
        return AllreduceTyped<int32_t>(data, elements);
      case at::kLong:
        return AllreduceTyped<int64_t>(data, elements);
      default:
        throw std::invalid_argument("unsupported dtype reached the reduction");  // Validate()
    }
  }

  void BroadcastBytes(void* data, size_t bytes, int root) {
    gloo::BroadcastOptions options(context_);
    options.setOutput(static_cast<uint8_t*>(data), bytes);
    options.setRoot(root);
    options.setTimeout(timeout_);
    gloo::broadcast(options);
  }

  const CollectiveOptions options_;
  const std::chrono::milliseconds timeout_;
  // Destroyed in reverse: the context, then its device, then the store.
  std::shared_ptr<RendezvousStore> store_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  absl::Status broken_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Collective>> CreateGlooCollective(
    const CollectiveOptions& options, std::shared_ptr<RendezvousStore> store) {
  IgnoreSigpipeIfDefault();
  std::unique_ptr<GlooCollective> collective;
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = options.interface_host;
    std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(options.rank, options.world_size);
    context->setTimeout(absl::ToChronoMilliseconds(options.timeout));
    context->connectFullMesh(store->Namespace("gloo"), device);
    collective = std::make_unique<GlooCollective>(options, std::move(store), std::move(device),
                                                  std::move(context));
  } catch (const std::exception& e) {
    return StatusFromException(e,
                               absl::StrCat("gloo rendezvous through ", options.rendezvous,
                                            " (interface ", options.interface_host, ")"),
                               options.rank, options.world_size);
  }
  // Past this barrier no rank reads the store again, so rank 0 may stop serving it.
  BPO_RETURN_IF_ERROR(collective->Barrier());
  return std::unique_ptr<Collective>(std::move(collective));
}

}  // namespace bpo::collective::internal
