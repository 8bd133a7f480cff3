#include "collective/collective.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "collective/collective_internal.h"
#include "common/logging.h"

namespace bpo::collective {
namespace {

using internal::DescribeTensors;

absl::Status CheckFloating(const std::vector<at::Tensor>& tensors) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].defined() || !at::isFloatingType(tensors[i].scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat("all-reduce mean: tensor ", i,
                                                     " is not floating point (",
                                                     DescribeTensors(tensors), ")"));
    }
  }
  return absl::OkStatus();
}

// world_size 1: every operation is the identity.
class LocalCollective final : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }

  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override {
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!tensors[i].defined()) {
        return absl::InvalidArgumentError(absl::StrCat("all-reduce: tensor ", i, " is undefined"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) override {
    if (root != 0) {
      return absl::InvalidArgumentError(absl::StrCat("broadcast: root ", root, " outside [0, 1)"));
    }
    return absl::OkStatus();
  }

  absl::Status Barrier() override { return absl::OkStatus(); }

 protected:
  absl::Status AllReduceMeanImpl(std::vector<at::Tensor>& tensors) override {
    return CheckFloating(tensors);
  }
};

#ifdef BPO_HAVE_NCCL
// Backend::kAuto with a GPU: CPU tensors through Gloo, CUDA tensors through NCCL.
class DispatchingCollective final : public Collective {
 public:
  DispatchingCollective(std::unique_ptr<Collective> cpu, std::unique_ptr<Collective> cuda)
      : cpu_(std::move(cpu)), cuda_(std::move(cuda)) {}

  int rank() const override { return cpu_->rank(); }
  int world_size() const override { return cpu_->world_size(); }

  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override {
    absl::StatusOr<Collective*> target = Pick(tensors);
    if (!target.ok()) return target.status();
    return (*target)->AllReduceSum(tensors);
  }

  absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) override {
    absl::StatusOr<Collective*> target = Pick(tensors);
    if (!target.ok()) return target.status();
    return (*target)->Broadcast(tensors, root);
  }

  absl::Status Barrier() override { return cpu_->Barrier(); }

 protected:
  absl::Status AllReduceMeanImpl(std::vector<at::Tensor>& tensors) override {
    absl::StatusOr<Collective*> target = Pick(tensors);
    if (!target.ok()) return target.status();
    return (*target)->AllReduceMean(tensors);
  }

 private:
  // NCCL iff the first defined tensor is on CUDA; all must agree.
  absl::StatusOr<Collective*> Pick(const std::vector<at::Tensor>& tensors) {
    int cuda = -1;
    for (const at::Tensor& t : tensors) {
      if (!t.defined()) continue;
      if (cuda == -1) cuda = t.is_cuda();
      if (cuda != static_cast<int>(t.is_cuda())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "collective: tensors mix CPU and CUDA devices (", DescribeTensors(tensors), ")"));
      }
    }
    return cuda == 1 ? cuda_.get() : cpu_.get();
  }

  std::unique_ptr<Collective> cpu_;
  std::unique_ptr<Collective> cuda_;
};
#endif  // BPO_HAVE_NCCL

}  // namespace

absl::StatusOr<Backend> ParseBackend(absl::string_view name) {
  if (name == "auto") return Backend::kAuto;
  if (name == "gloo") return Backend::kGloo;
  if (name == "nccl") return Backend::kNccl;
  return absl::InvalidArgumentError(
      absl::StrCat("collective backend '", name, "': expected auto, gloo or nccl"));
}

absl::string_view BackendName(Backend backend) {
  switch (backend) {
    case Backend::kAuto:
      return "auto";
    case Backend::kGloo:
      return "gloo";
    case Backend::kNccl:
      return "nccl";
  }
  return "unknown";
}

absl::Status Collective::AllReduceMean(std::vector<at::Tensor>& tensors) {
  return AllReduceMeanImpl(tensors);
}

absl::Status Collective::AllReduceMeanImpl(std::vector<at::Tensor>& tensors) {
  if (absl::Status status = CheckFloating(tensors); !status.ok()) return status;
  if (absl::Status status = AllReduceSum(tensors); !status.ok()) return status;
  try {
    for (at::Tensor& t : tensors) t.div_(world_size());
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("all-reduce mean: dividing by the world size: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Collective>> CreateCollective(const CollectiveOptions& options,
                                                             Backend backend) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "collective: rank ", options.rank, " outside [0, world_size ", options.world_size, ")"));
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("collective: timeout must be positive");
  }
  if (!options.rendezvous.empty() || options.world_size > 1) {
    absl::StatusOr<internal::RendezvousAddress> address =
        internal::ParseRendezvous(options.rendezvous);
    if (!address.ok()) return address.status();
  }
  if (options.world_size == 1) return std::make_unique<LocalCollective>();

  bool use_nccl = backend == Backend::kNccl;
#ifdef BPO_HAVE_NCCL
  if (backend == Backend::kAuto) use_nccl = internal::CudaDeviceCount() > 0;
#else
  if (use_nccl) {
    return absl::UnimplementedError("collective backend nccl: bpo was built without NCCL");
  }
#endif
  BPO_LOG(INFO) << "collective: " << internal::Where(options.rank, options.world_size)
                << ", backend " << BackendName(backend) << (use_nccl ? " (nccl" : " (gloo")
                << (backend == Backend::kAuto && use_nccl ? "+gloo)" : ")") << ", rendezvous "
                << options.rendezvous << ", run_id '" << options.run_id << "', timeout "
                << absl::FormatDuration(options.timeout) << ", interface "
                << options.interface_host;

  absl::StatusOr<std::shared_ptr<internal::RendezvousStore>> store =
      internal::RendezvousStore::Open(options);
  if (!store.ok()) return store.status();
  std::unique_ptr<Collective> gloo;
  if (backend != Backend::kNccl) {
    absl::StatusOr<std::unique_ptr<Collective>> created =
        internal::CreateGlooCollective(options, *store);
    if (!created.ok()) return created.status();
    gloo = *std::move(created);
    if (!use_nccl) return gloo;
  }
#ifdef BPO_HAVE_NCCL
  absl::StatusOr<std::unique_ptr<Collective>> nccl =
      internal::CreateNcclCollective(options, *store);
  if (!nccl.ok() || gloo == nullptr) return nccl;
  return std::make_unique<DispatchingCollective>(std::move(gloo), *std::move(nccl));
#else
  return gloo;
#endif
}

namespace internal {

std::string DtypeName(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kInt:
      return "int32";
    case at::kLong:
      return "int64";
    default:
      return c10::toString(type);
  }
}

std::string DescribeTensors(const std::vector<at::Tensor>& tensors) {
  constexpr size_t kShown = 8;
  std::vector<std::string> parts;
  for (size_t i = 0; i < tensors.size() && i < kShown; ++i) {
    const at::Tensor& t = tensors[i];
    parts.push_back(t.defined() ? absl::StrCat(DtypeName(t.scalar_type()), "[",
                                               absl::StrJoin(t.sizes(), ", "), "]",
                                               t.is_cuda() ? "@cuda" : "")
                                : "undefined");
  }
  if (tensors.size() > kShown) parts.push_back(absl::StrCat("... ", tensors.size(), " in all"));
  return absl::StrJoin(parts, ", ");
}

uint64_t CallSignature(OpKind op, int root, const std::vector<at::Tensor>& tensors, bool local_ok) {
  uint64_t hash = 14695981039346656037ull;
  const auto mix = [&hash](int64_t word) {
    for (int i = 0; i < 8; ++i) {
      hash ^= static_cast<uint64_t>(word >> (8 * i)) & 0xff;
      hash *= 1099511628211ull;
    }
  };
  mix(static_cast<int64_t>(op));
  mix(root);
  mix(local_ok);
  mix(static_cast<int64_t>(tensors.size()));
  for (const at::Tensor& t : tensors) {
    if (!t.defined()) {
      mix(-1);
      continue;
    }
    mix(static_cast<int64_t>(t.scalar_type()));
    mix(static_cast<int64_t>(t.device().type()));
    mix(t.dim());
    for (int64_t size : t.sizes()) mix(size);
  }
  return hash;
}

bool ReducibleType(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
    case at::kDouble:
    case at::kHalf:
    case at::kBFloat16:
    case at::kInt:
    case at::kLong:
      return true;
    default:
      return false;
  }
}

namespace {

// What is wrong with `t` for `op`, or "" when nothing.
std::string TensorProblem(const at::Tensor& t, OpKind op,
                          const std::function<std::string(const at::Tensor&)>& placement) {
  if (!t.defined()) return "is undefined";
  if (std::string problem = placement(t); !problem.empty()) return problem;
  if (op != OpKind::kBroadcast && !ReducibleType(t.scalar_type())) {
    return absl::StrCat("has dtype ", DtypeName(t.scalar_type()),
                        ": supported are float32, float64, float16, bfloat16, int32, int64");
  }
  if (op == OpKind::kAllReduceMean && !at::isFloatingType(t.scalar_type())) {
    return absl::StrCat("has dtype ", DtypeName(t.scalar_type()),
                        ": the mean takes floating-point tensors");
  }
  return "";
}

}  // namespace

absl::Status ValidateTensors(const std::vector<at::Tensor>& tensors, OpKind op,
                             absl::string_view where, absl::string_view name,
                             const std::function<std::string(const at::Tensor&)>& placement) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (std::string problem = TensorProblem(tensors[i], op, placement); !problem.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", name, ": tensor ", i, " ", problem));
    }
  }
  return absl::OkStatus();
}

absl::Status MismatchedCallError(absl::string_view where, absl::string_view name,
                                 const std::vector<at::Tensor>& tensors, int root) {
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": ", name,
      ": ranks passed different tensor lists (count, dtypes, shapes or root); this rank: ",
      DescribeTensors(tensors), root >= 0 ? absl::StrCat(", root ", root) : ""));
}

}  // namespace internal
}  // namespace bpo::collective
