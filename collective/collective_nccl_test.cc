// GPU tests of the NCCL backend (label gpu: CPU CI excludes them; they have
// not run in CI). Debian's LibTorch is CPU-only, so CUDA tensors are made with
// at::from_blob over cudaMalloc'd memory and checked with cudaMemcpy.
//
// TwoProcesses re-executes this binary as 2 ranks. NCCL refuses two ranks of
// one communicator on the same GPU ("Duplicate GPU detected"): with a single
// GPU the test checks that this comes back as an error within the timeout on
// both ranks instead of a hang; with 2+ GPUs it checks the results.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "collective/collective.h"
#include "collective/collective_internal.h"
#include "collective/collective_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::collective {
namespace {

using ::testing::AnyOf;

constexpr char kWorkerEnv[] = "BPO_NCCL_TEST_WORKER";

template <typename T>
at::Tensor CudaTensor(const std::vector<T>& values, int device) {
  EXPECT_EQ(cudaSetDevice(device), cudaSuccess);
  void* data = nullptr;
  EXPECT_EQ(cudaMalloc(&data, values.size() * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(data, values.data(), values.size() * sizeof(T), cudaMemcpyHostToDevice),
            cudaSuccess);
  const at::Device cuda(at::kCUDA, static_cast<c10::DeviceIndex>(device));
  // The overload with target_device: without it LibTorch asks its (absent)
  // CUDA hooks which device the pointer is on.
  return at::from_blob(
      data, {static_cast<int64_t>(values.size())}, /*strides=*/{1}, [](void* p) { cudaFree(p); },
      at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value).device(cuda), cuda);
}

template <typename T>
std::vector<T> ToHost(const at::Tensor& t) {
  std::vector<T> values(t.numel());
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(values.data(), t.data_ptr(), t.nbytes(), cudaMemcpyDeviceToHost),
            cudaSuccess);
  return values;
}

class NcclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv(kWorkerEnv) == nullptr && internal::CudaDeviceCount() == 0) {
      GTEST_SKIP() << "no CUDA device";
    }
  }
};

TEST_F(NcclTest, OneRankCommunicatorRunsEveryOperation) {
  if (std::getenv(kWorkerEnv) != nullptr) GTEST_SKIP();
  CollectiveOptions options;
  options.timeout = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<Collective>> comm =
      internal::CreateNcclCollective(options, nullptr);
  ASSERT_TRUE(comm.ok()) << comm.status();
  std::vector<at::Tensor> tensors = {CudaTensor<float>({1, 2, 3}, 0),
                                     CudaTensor<double>({4, 5}, 0)};
  ASSERT_TRUE((*comm)->AllReduceSum(tensors).ok());
  ASSERT_TRUE((*comm)->AllReduceMean(tensors).ok());
  ASSERT_TRUE((*comm)->Broadcast(tensors, 0).ok());
  ASSERT_TRUE((*comm)->Barrier().ok());
  EXPECT_EQ(ToHost<float>(tensors[0]), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(ToHost<double>(tensors[1]), (std::vector<double>{4, 5}));
  std::vector<at::Tensor> cpu = {at::ones({2})};
  EXPECT_EQ((*comm)->AllReduceSum(cpu).code(), absl::StatusCode::kInvalidArgument);
  std::vector<at::Tensor> ints = {CudaTensor<int64_t>({1}, 0)};
  EXPECT_EQ((*comm)->AllReduceMean(ints).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE((*comm)->AllReduceSum(tensors).ok()) << "usable after argument errors";
}

TEST_F(NcclTest, Worker) {
  const char* scenario = std::getenv(kWorkerEnv);
  if (scenario == nullptr) GTEST_SKIP() << "runs only as a worker of TwoProcesses";
  CollectiveOptions options;
  ASSERT_TRUE(absl::SimpleAtoi(std::getenv("RANK"), &options.rank));
  options.world_size = 2;
  options.rendezvous = std::getenv("RENDEZVOUS");
  options.run_id = std::getenv("RUN_ID");
  options.timeout = absl::Seconds(20);
  const int devices = internal::CudaDeviceCount();
  const int device = options.rank % devices;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Collective>> comm = CreateCollective(options, Backend::kNccl);
  if (devices < 2) {
    // Either NCCL refuses the shared GPU, quickly and clearly, or it works.
    if (!comm.ok()) {
      EXPECT_LT(absl::Now() - start, options.timeout + absl::Seconds(5));
      EXPECT_THAT(comm.status().message(), ::testing::HasSubstr("rank "));
      std::printf("[rank %d] NCCL with 2 ranks on 1 GPU: %s\n", options.rank,
                  comm.status().ToString().c_str());
      return;
    }
  }
  ASSERT_TRUE(comm.ok()) << comm.status();
  const float r = static_cast<float>(options.rank);
  std::vector<at::Tensor> tensors = {CudaTensor<float>({r, 2 * r, 1}, device),
                                     CudaTensor<double>({r + 0.5}, device)};
  absl::Status status = (*comm)->AllReduceSum(tensors);
  if (!status.ok() && devices < 2) {
    std::printf("[rank %d] NCCL with 2 ranks on 1 GPU failed at the first all-reduce: %s\n",
                options.rank, status.ToString().c_str());
    return;
  }
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ToHost<float>(tensors[0]), (std::vector<float>{1, 2, 2}));
  EXPECT_EQ(ToHost<double>(tensors[1]), (std::vector<double>{2}));
  ASSERT_TRUE((*comm)->AllReduceMean(tensors).ok());
  EXPECT_EQ(ToHost<float>(tensors[0]), (std::vector<float>{1, 2, 2}));
  std::vector<at::Tensor> shared = {CudaTensor<int64_t>({options.rank, 7}, device)};
  ASSERT_TRUE((*comm)->Broadcast(shared, 1).ok());
  EXPECT_EQ(ToHost<int64_t>(shared[0]), (std::vector<int64_t>{1, 7}));
  ASSERT_TRUE((*comm)->Barrier().ok());
  std::vector<at::Tensor> mismatched = {
      CudaTensor<float>(std::vector<float>(3 + options.rank), device)};
  EXPECT_EQ((*comm)->AllReduceSum(mismatched).code(), absl::StatusCode::kInvalidArgument);

  if (std::string(scenario) == "dead_peer") {
    if (options.rank == 1) std::_Exit(0);  // dies without a word
    const absl::Time call = absl::Now();
    status = (*comm)->AllReduceSum(tensors);
    EXPECT_THAT(status.code(),
                AnyOf(absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kUnavailable))
        << status;
    EXPECT_LT(absl::Now() - call, options.timeout + absl::Seconds(5)) << status;
    std::printf("[rank 0] after the peer died: %s\n", status.ToString().c_str());
  }
}

TEST_F(NcclTest, TwoProcesses) {
  if (std::getenv(kWorkerEnv) != nullptr) GTEST_SKIP();
  for (const char* scenario : {"ops", "dead_peer"}) {
    const std::string dir = testing::MakeTempDir();
    std::vector<pid_t> pids;
    for (int rank = 0; rank < 2; ++rank) {
      pids.push_back(testing::SpawnSelf(
          "NcclTest.Worker", {{kWorkerEnv, scenario},
                              {"RANK", absl::StrCat(rank)},
                              {"RENDEZVOUS", "file:" + dir},
                              {"RUN_ID", absl::StrCat("nccl-", scenario, "-", getpid())}}));
    }
    const std::vector<int> statuses = testing::WaitAll(pids, absl::Seconds(120));
    for (int rank = 0; rank < 2; ++rank) {
      EXPECT_TRUE(WIFEXITED(statuses[rank]) && WEXITSTATUS(statuses[rank]) == 0)
          << scenario << ": rank " << rank << " wait status " << statuses[rank];
    }
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace bpo::collective
