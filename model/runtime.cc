#include "model/runtime.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"

namespace bpo::model {

namespace {

std::string MappedBlasLibrary() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string name = std::filesystem::path(path).filename().string();
    if (name.rfind("libblas", 0) == 0 || name.rfind("libopenblas", 0) == 0 ||
        name.rfind("libmkl_rt", 0) == 0) {
      std::error_code ec;
      const auto real = std::filesystem::canonical(path, ec);
      return ec ? path : real.string();
    }
  }
  return "";
}

}  // namespace

RuntimeInfo GetRuntimeInfo() {
  RuntimeInfo info;
  info.libtorch_version = TORCH_VERSION;
  info.build_config = at::show_config();
  info.blas_library = MappedBlasLibrary();
  info.intra_op_threads = at::get_num_threads();
  info.cuda_available = at::hasCUDA();
  info.cuda_devices = info.cuda_available ? static_cast<int>(at::getNumGPUs()) : 0;
  return info;
}

absl::StatusOr<double> MeasureMatmulGflops(int n, int reps) {
  if (n <= 0 || reps <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("matmul size ", n, " x ", reps, " reps"));
  }
  try {
    at::manual_seed(0);
    const at::Tensor a = at::randn({n, n});
    const at::Tensor b = at::randn({n, n});
    at::Tensor c = at::mm(a, b);  // warm-up
    std::vector<double> seconds;
    for (int i = 0; i < reps; ++i) {
      const auto start = std::chrono::steady_clock::now();
      c = at::mm(a, b);
      seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::nth_element(seconds.begin(), seconds.begin() + reps / 2, seconds.end());
    return 2.0 * n * n * static_cast<double>(n) / seconds[reps / 2] / 1e9;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("matmul failed: ", e.what()));
  }
}

}  // namespace bpo::model
