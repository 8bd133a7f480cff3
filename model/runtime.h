// What the tensor runtime is on this machine: LibTorch version, BLAS, threads,
// CUDA devices, and a quick matmul rate to catch a slow reference BLAS.
#ifndef BPO_MODEL_RUNTIME_H_
#define BPO_MODEL_RUNTIME_H_

#include <string>

#include "absl/status/statusor.h"

namespace bpo::model {

struct RuntimeInfo {
  std::string libtorch_version;  // e.g. "1.13.1"
  std::string build_config;      // at::show_config(): BLAS, LAPACK, CPU capability
  // The BLAS library mapped into this process (Debian's LibTorch takes
  // whichever libblas.so.3 the alternatives select), resolved to its real path.
  std::string blas_library;
  int intra_op_threads = 0;
  bool cuda_available = false;
  int cuda_devices = 0;
};

RuntimeInfo GetRuntimeInfo();

// Median GFLOP/s of an n x n fp32 matmul on the CPU over `reps` runs.
absl::StatusOr<double> MeasureMatmulGflops(int n, int reps);

}  // namespace bpo::model

#endif  // BPO_MODEL_RUNTIME_H_
