// `bpo local` on the tiny config with model.device cuda: the coordinator,
// learner ranks, 2 actors and a rule annotator as separate processes, every
// model on a GPU, run to the end (T = 8 steps of B = 4, F*M = 32 pairs). The
// store must then show what local_run_test requires of a complete run: every
// pair consumed once, in T complete batches, all steps committed, the adapter
// exported. Learner ranks: min(2, visible GPUs), as each needs a GPU of its
// own. Skipped without a CUDA device.
#include <ATen/Context.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_run.h"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The tiny config (testing::WriteTinyConfig) with `device: cuda` added to its
// model line, which the helper writes itself.
std::string WriteTinyCudaConfig(const std::string& out_dir, const std::string& extra) {
  const std::string path = testing::WriteTinyConfig(out_dir, extra);
  std::istringstream in(ReadFile(path));
  std::string text;
  int edited = 0;
  for (std::string line; std::getline(in, line);) {
    if (absl::StartsWith(line, "model: {") && absl::EndsWith(line, "}")) {
      line.insert(line.size() - 1, ", device: cuda");
      ++edited;
    }
    absl::StrAppend(&text, line, "\n");
  }
  EXPECT_EQ(edited, 1) << path << ":\n" << text;
  std::ofstream file(path);
  file << text;
  EXPECT_TRUE(file.good()) << path;
  return path;
}

TEST(LocalRunCudaTest, TinyRunOnCudaCompletes) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const std::string out =
      (fs::temp_directory_path() / absl::StrCat("bpo_local_cuda_", getpid())).string();
  fs::remove_all(out);
  fs::create_directories(out);
  const int ranks = std::min<int>(2, at::getNumGPUs());
  const std::string config = WriteTinyCudaConfig(
      out, absl::StrCat("learner: {world_size: ", ranks, ", checkpoint_every: 1}"));

  auto r = testing::RunCommand({BPO_BINARY, "local", "--config", config, "--log_level=warning"},
                               absl::Seconds(540));
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string run_dir = out + "/local-tiny";
  ASSERT_EQ(r->exit_code, 0) << r->out << r->err;
  EXPECT_THAT(r->out, HasSubstr("8/8 steps, 32 pairs consumed"));
  EXPECT_THAT(testing::CompleteRunViolations(run_dir), ::testing::IsEmpty());
  // The config every process read asked for the GPU.
  EXPECT_THAT(ReadFile(run_dir + "/local-config.yaml"), HasSubstr("device: \"cuda\""));
  EXPECT_EQ(testing::QueryStore(run_dir, "SELECT COUNT(*) FROM snapshots"), 4);
}

}  // namespace
}  // namespace bpo
