// ResolveProcessDevice: which GPU a worker process takes for model.device.
// The environment and the GPU count are given, so no GPU is needed.
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "model/policy.h"

namespace bpo::model {
namespace {

absl::StatusOr<std::string> Resolve(const std::string& configured,
                                    std::map<std::string, std::string> env, int gpus) {
  return ResolveProcessDevice(
      configured,
      [&](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
      },
      gpus);
}

TEST(ResolveProcessDeviceTest, CpuAndExplicitOrdinalsStayAsConfigured) {
  EXPECT_EQ(*Resolve("cpu", {{"BPO_CUDA_DEVICE", "3"}}, 8), "cpu");
  EXPECT_EQ(*Resolve("cuda:5", {{"BPO_CUDA_DEVICE", "3"}, {"LOCAL_RANK", "1"}}, 8), "cuda:5");
}

TEST(ResolveProcessDeviceTest, CudaTakesTheFirstVariableSet) {
  EXPECT_EQ(*Resolve("cuda", {}, 8), "cuda:0");
  EXPECT_EQ(*Resolve("cuda", {{"SLURM_LOCALID", "2"}}, 8), "cuda:2");
  EXPECT_EQ(*Resolve("cuda", {{"LOCAL_RANK", "3"}, {"SLURM_LOCALID", "2"}}, 8), "cuda:3");
  EXPECT_EQ(*Resolve("cuda", {{"BPO_CUDA_DEVICE", "7"}, {"LOCAL_RANK", "3"}}, 8), "cuda:7");
}

TEST(ResolveProcessDeviceTest, LocalIndicesWrapAroundTheVisibleGpus) {
  EXPECT_EQ(*Resolve("cuda", {{"LOCAL_RANK", "9"}}, 8), "cuda:1");
  EXPECT_EQ(*Resolve("cuda", {{"SLURM_LOCALID", "4"}}, 4), "cuda:0");
  // Unparsable local indices are not ours to judge: the next variable counts.
  EXPECT_EQ(*Resolve("cuda", {{"LOCAL_RANK", "x"}, {"SLURM_LOCALID", "1"}}, 4), "cuda:1");
}

TEST(ResolveProcessDeviceTest, ABadBpoCudaDeviceIsAnErrorNamingIt) {
  auto bad = Resolve("cuda", {{"BPO_CUDA_DEVICE", "one"}}, 8);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("BPO_CUDA_DEVICE='one'"), std::string::npos)
      << bad.status();
  auto beyond = Resolve("cuda", {{"BPO_CUDA_DEVICE", "8"}}, 8);
  ASSERT_FALSE(beyond.ok());
  EXPECT_NE(beyond.status().message().find("only 8 GPU(s)"), std::string::npos) << beyond.status();
}

}  // namespace
}  // namespace bpo::model
