// bpo info: versions and what the runtime can do on this machine.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "common/version.h"
#include "google/protobuf/stubs/common.h"
#include "grpcpp/grpcpp.h"
#include "model/runtime.h"

#ifdef BPO_HAVE_NCCL
#include <nccl.h>
#endif

ABSL_FLAG(int, matmul_size, 1024,
          "Measure an N x N fp32 matmul on the CPU and report GFLOP/s (0 skips).");
ABSL_FLAG(bool, build_config, false, "Also print LibTorch's full build configuration.");

namespace bpo::cli {
namespace {

int RunInfo(const std::vector<std::string>&) {
  const model::RuntimeInfo rt = model::GetRuntimeInfo();
  std::cout << "bpo        " << kBpoVersion << "\n"
            << "libtorch   " << rt.libtorch_version << " (" << rt.intra_op_threads
            << " intra-op threads)\n"
            << "grpc       " << grpc::Version() << "\n"
            << "protobuf   " << google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION)
            << "\n";
#ifdef BPO_HAVE_NCCL
  int nccl_version = 0;
  ncclGetVersion(&nccl_version);
  std::cout << "nccl       " << nccl_version << " (linked)\n";
#else
  std::cout << "nccl       not built (BPO_WITH_NCCL=OFF or no CUDA toolkit); Gloo for CPU\n";
#endif
  std::cout << "cuda       "
            << (rt.cuda_available ? absl::StrFormat("%d device(s)", rt.cuda_devices)
                                  : std::string("not available to LibTorch"))
            << "\n";
  std::cout << "blas       "
            << (rt.blas_library.empty() ? std::string("built into LibTorch (see --build_config)")
                                        : rt.blas_library)
            << "\n";
  const int n = absl::GetFlag(FLAGS_matmul_size);
  if (n > 0) {
    auto gflops = model::MeasureMatmulGflops(n, 5);
    if (!gflops.ok()) return Fail("info", gflops.status());
    std::cout << absl::StrFormat("matmul     %d^2 fp32: %.1f GFLOP/s (median of 5)\n", n, *gflops);
    if (*gflops < 10) {
      std::cout << "warning    below 10 GFLOP/s: LibTorch may be on the reference BLAS; "
                   "scripts/setup-deps selects OpenBLAS\n";
    }
  }
  if (absl::GetFlag(FLAGS_build_config)) std::cout << "\n" << rt.build_config;
  return kExitOk;
}

}  // namespace

const Command& InfoCommand() {
  static const Command kCommand{"info",
                                "Print versions, devices and the CPU matmul rate.",
                                "bpo info [--matmul_size=N] [--build_config]",
                                __FILE__,
                                0,
                                0,
                                &RunInfo};
  return kCommand;
}

}  // namespace bpo::cli
