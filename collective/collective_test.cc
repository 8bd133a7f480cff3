// Multi-process tests of the Gloo collectives. A parent test re-executes this
// binary (posix_spawn of /proc/self/exe, never a bare fork of a process with
// LibTorch and Gloo threads) as R workers that run CollectiveWorker.Run with
// RANK, WORLD_SIZE, RENDEZVOUS, RUN_ID and BPO_COLLECTIVE_SCENARIO set; each
// worker checks its own results and exits 0 on success.
#include "collective/collective.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "collective/collective_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::collective {
namespace {

using ::testing::AnyOf;
using testing::FreeTcpPort;
using ::testing::HasSubstr;

constexpr char kScenarioEnv[] = "BPO_COLLECTIVE_SCENARIO";
constexpr int kTimeoutMs = 3000;  // short, so that failure tests finish quickly

// ---------------------------------------------------------------- worker side

struct WorkerEnv {
  std::string scenario;
  CollectiveOptions options;
};

std::optional<WorkerEnv> ReadWorkerEnv() {
  const char* scenario = std::getenv(kScenarioEnv);
  if (scenario == nullptr) return std::nullopt;
  WorkerEnv env;
  env.scenario = scenario;
  int timeout_ms = kTimeoutMs;
  const auto read = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value == nullptr ? "" : value);
  };
  EXPECT_TRUE(absl::SimpleAtoi(read("RANK"), &env.options.rank));
  EXPECT_TRUE(absl::SimpleAtoi(read("WORLD_SIZE"), &env.options.world_size));
  EXPECT_TRUE(absl::SimpleAtoi(read("BPO_COLLECTIVE_TIMEOUT_MS"), &timeout_ms));
  env.options.rendezvous = read("RENDEZVOUS");
  env.options.run_id = read("RUN_ID");
  env.options.timeout = absl::Milliseconds(timeout_ms);
  return env;
}

// Rank q's inputs: several shapes and dtypes, one non-contiguous; small
// integers, so float sums are exact.
std::vector<at::Tensor> Inputs(int q, bool floating_only = false) {
  std::vector<at::Tensor> tensors = {
      at::arange(12, at::kFloat).reshape({3, 4}) * (q + 1),
      at::full({5}, q + 0.5, at::kDouble),
      (at::arange(6, at::kFloat).reshape({3, 2}) + 10 * q).t(),  // [2, 3], not contiguous
      at::full({}, 2.0 * q, at::kFloat),
      at::full({7}, q, at::kBFloat16),
  };
  if (!floating_only) tensors.push_back(at::full({4}, q - 1, at::kLong));
  return tensors;
}

std::vector<at::Tensor> ExpectedSum(int world_size, bool floating_only = false) {
  std::vector<at::Tensor> sum = Inputs(0, floating_only);
  for (at::Tensor& t : sum) t = t.clone();
  for (int q = 1; q < world_size; ++q) {
    const std::vector<at::Tensor> more = Inputs(q, floating_only);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += more[i];
  }
  return sum;
}

void ExpectTensorsEqual(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want,
                        double tolerance, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].scalar_type(), want[i].scalar_type()) << what << " tensor " << i;
    EXPECT_EQ(got[i].sizes(), want[i].sizes()) << what << " tensor " << i;
    EXPECT_TRUE(at::allclose(got[i].to(at::kDouble), want[i].to(at::kDouble), tolerance, 0))
        << what << " tensor " << i << ": got " << got[i] << " want " << want[i];
  }
}

void RunOps(Collective& comm) {
  const int rank = comm.rank(), world = comm.world_size();

  std::vector<at::Tensor> tensors = Inputs(rank);
  ASSERT_TRUE(comm.AllReduceSum(tensors).ok());
  ExpectTensorsEqual(tensors, ExpectedSum(world), 0, "sum");
  EXPECT_FALSE(tensors[2].is_contiguous()) << "the caller's tensor objects are updated in place";

  std::vector<at::Tensor> means = Inputs(rank, /*floating_only=*/true);
  ASSERT_TRUE(comm.AllReduceMean(means).ok());
  std::vector<at::Tensor> expected_mean = ExpectedSum(world, /*floating_only=*/true);
  for (at::Tensor& t : expected_mean) t = t / world;
  ExpectTensorsEqual(means, expected_mean, 1e-2, "mean");  // bfloat16 rounding

  std::vector<at::Tensor> shared = Inputs(rank);
  shared.push_back(at::full({3}, rank % 2 == 0, at::kBool));  // broadcast takes any dtype
  const int root = world - 1;
  ASSERT_TRUE(comm.Broadcast(shared, root).ok());
  std::vector<at::Tensor> want = Inputs(root);
  want.push_back(at::full({3}, root % 2 == 0, at::kBool));
  ExpectTensorsEqual(shared, want, 0, "broadcast");
  std::vector<at::Tensor> single = {at::full({1000}, rank, at::kFloat)};
  ASSERT_TRUE(comm.Broadcast(single, 0).ok());
  EXPECT_EQ(single[0].sum().item<float>(), 0);

  EXPECT_TRUE(comm.Barrier().ok());

  std::vector<at::Tensor> none;
  EXPECT_TRUE(comm.AllReduceSum(none).ok());
  std::vector<at::Tensor> empty = {at::zeros({0, 3}), at::ones({2})};
  EXPECT_TRUE(comm.AllReduceSum(empty).ok());
  EXPECT_EQ(empty[1][0].item<float>(), world);

  // Errors every rank sees alike; the communicator stays usable after them.
  std::vector<at::Tensor> ints = {at::ones({2}, at::kLong)};
  absl::Status status = comm.AllReduceMean(ints);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("floating-point"));
  std::vector<at::Tensor> bools = {at::ones({2}, at::kBool)};
  status = comm.AllReduceSum(bools);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("supported are float32"));
  std::vector<at::Tensor> mismatched = {at::ones({rank == 0 ? 4 : 5})};
  status = comm.AllReduceSum(mismatched);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("ranks passed different tensor lists"));
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("rank ", rank, "/", world)));
  status = comm.Broadcast(single, world);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  std::vector<at::Tensor> after = {at::ones({3}, at::kDouble)};
  EXPECT_TRUE(comm.AllReduceSum(after).ok());
  EXPECT_EQ(after[0][2].item<double>(), world);
}

// Median and best all-reduce time of `tensors` in microseconds.
std::pair<double, double> TimeAllReduce(Collective& comm, std::vector<at::Tensor>& tensors,
                                        int iterations) {
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(comm.AllReduceSum(tensors).ok());
  std::vector<double> times;
  for (int i = 0; i < iterations; ++i) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(comm.AllReduceSum(tensors).ok());
    times.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], times.front()};
}

void RunLatency(Collective& comm) {
  constexpr int64_t kElements = 1 << 20;
  std::vector<at::Tensor> one = {at::ones({kElements}, at::kFloat)};
  const auto [one_median, one_best] = TimeAllReduce(comm, one, 20);
  std::vector<at::Tensor> pieces;  // 16 LoRA-like matrices, 1M floats in all
  for (int i = 0; i < 16; ++i) pieces.push_back(at::ones({kElements / 16 / 64, 64}));
  const auto [pieces_median, pieces_best] = TimeAllReduce(comm, pieces, 20);
  std::vector<at::Tensor> tiny = {at::ones({1})};
  const auto [tiny_median, tiny_best] = TimeAllReduce(comm, tiny, 50);
  if (comm.rank() == 0) {
    std::printf(
        "[latency] gloo all-reduce sum, %d local processes, shape check on:\n"
        "[latency]   1M float32 (4 MiB), one tensor:  median %.0f us, best %.0f us\n"
        "[latency]   1M float32 in 16 tensors (flattened): median %.0f us, best %.0f us\n"
        "[latency]   1 float32:  median %.0f us, best %.0f us\n",
        comm.world_size(), one_median, one_best, pieces_median, pieces_best, tiny_median,
        tiny_best);
    std::fflush(stdout);
  }
}

void ExpectPeerFailure(const absl::Status& status, int rank, absl::Duration elapsed,
                       absl::Duration timeout) {
  EXPECT_THAT(status.code(),
              AnyOf(absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kUnavailable))
      << status;
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("rank ", rank, "/")));
  EXPECT_LT(elapsed, timeout + absl::Seconds(2)) << status;
  std::printf("[rank %d] failed after %s as expected: %s\n", rank,
              absl::FormatDuration(elapsed).c_str(), status.ToString().c_str());
  std::fflush(stdout);
}

TEST(CollectiveWorker, Run) {
  const std::optional<WorkerEnv> env = ReadWorkerEnv();
  if (!env.has_value()) GTEST_SKIP() << "runs only as a worker process of the tests below";
  const CollectiveOptions& options = env->options;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Collective>> comm = CreateCollective(options, Backend::kGloo);

  if (env->scenario == "missing_peer") {
    ExpectPeerFailure(comm.status(), options.rank, absl::Now() - start, options.timeout);
    EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded);
    return;
  }
  ASSERT_TRUE(comm.ok()) << comm.status();
  ASSERT_EQ((*comm)->rank(), options.rank);
  ASSERT_EQ((*comm)->world_size(), options.world_size);

  if (env->scenario == "ops") {
    RunOps(**comm);
    if (options.world_size == 2) RunLatency(**comm);
  } else if (env->scenario == "dead_peer" || env->scenario == "stuck_peer") {
    ASSERT_TRUE((*comm)->Barrier().ok());
    const bool dead = env->scenario == "dead_peer";
    if (options.rank == options.world_size - 1) {
      if (dead) raise(SIGKILL);
      absl::SleepFor(options.timeout + absl::Seconds(3));  // alive, but never joins
      return;
    }
    std::vector<at::Tensor> tensors = Inputs(options.rank);
    const absl::Time call = absl::Now();
    const absl::Status status = (*comm)->AllReduceSum(tensors);
    ExpectPeerFailure(status, options.rank, absl::Now() - call, options.timeout);
    if (!dead) {
      EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
    }
    // Broken for good, and fast to say so.
    const absl::Time again = absl::Now();
    const absl::Status second = (*comm)->Barrier();
    EXPECT_EQ(second.code(), status.code()) << second;
    EXPECT_THAT(second.message(), HasSubstr("broken by an earlier error"));
    EXPECT_LT(absl::Now() - again, absl::Milliseconds(100));
  } else {
    FAIL() << "unknown scenario " << env->scenario;
  }
}

// ---------------------------------------------------------------- parent side

// Runs `scenario` on ranks [0, spawned) of `world_size` and returns their wait statuses.
std::vector<int> RunWorkers(const std::string& scenario, int world_size, int spawned,
                            const std::string& rendezvous) {
  const std::string run_id =
      absl::StrCat(scenario, "-", getpid(), "-", absl::ToUnixMicros(absl::Now()));
  std::vector<pid_t> pids;
  for (int rank = 0; rank < spawned; ++rank) {
    pids.push_back(testing::SpawnSelf("CollectiveWorker.Run",
                                      {{kScenarioEnv, scenario},
                                       {"RANK", absl::StrCat(rank)},
                                       {"WORLD_SIZE", absl::StrCat(world_size)},
                                       {"RENDEZVOUS", rendezvous},
                                       {"RUN_ID", run_id},
                                       {"BPO_COLLECTIVE_TIMEOUT_MS", absl::StrCat(kTimeoutMs)}}));
  }
  return testing::WaitAll(pids, absl::Seconds(90));
}

void ExpectExitedOk(const std::vector<int>& statuses, const std::vector<int>& ranks) {
  for (int rank : ranks) {
    const int status = statuses[rank];
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "rank " << rank << " wait status " << status << " (see its output above)";
  }
}

class CollectiveFailureTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

class CollectiveProcessTest : public CollectiveFailureTest,
                              public ::testing::WithParamInterface<std::tuple<int, std::string>> {};

TEST_P(CollectiveProcessTest, OpsAgreeAcrossRanks) {
  const auto& [world_size, store] = GetParam();
  const std::string rendezvous =
      store == "file" ? absl::StrCat("file:", dir_) : absl::StrCat("tcp:127.0.0.1:", FreeTcpPort());
  const std::vector<int> statuses = RunWorkers("ops", world_size, world_size, rendezvous);
  std::vector<int> all(world_size);
  for (int i = 0; i < world_size; ++i) all[i] = i;
  ExpectExitedOk(statuses, all);
}

INSTANTIATE_TEST_SUITE_P(WorldSizes, CollectiveProcessTest,
                         ::testing::Combine(::testing::Values(2, 3),
                                            ::testing::Values("file", "tcp")),
                         [](const auto& info) {
                           return absl::StrCat(std::get<0>(info.param), "Ranks",
                                               std::get<1>(info.param) == "file" ? "File" : "Tcp");
                         });

TEST_F(CollectiveFailureTest, DeadPeerFailsOthersWithinTimeout) {
  const std::vector<int> statuses = RunWorkers("dead_peer", 3, 3, "file:" + dir_);
  ExpectExitedOk(statuses, {0, 1});
  EXPECT_TRUE(WIFSIGNALED(statuses[2]) && WTERMSIG(statuses[2]) == SIGKILL) << statuses[2];
}

TEST_F(CollectiveFailureTest, StuckPeerGivesDeadlineExceeded) {
  const std::vector<int> statuses =
      RunWorkers("stuck_peer", 2, 2, absl::StrCat("tcp:127.0.0.1:", FreeTcpPort()));
  ExpectExitedOk(statuses, {0, 1});
}

TEST_F(CollectiveFailureTest, MissingPeerFailsRendezvousWithinTimeout) {
  ExpectExitedOk(RunWorkers("missing_peer", 2, 1, "file:" + dir_), {0});
  ExpectExitedOk(RunWorkers("missing_peer", 2, 1, absl::StrCat("tcp:127.0.0.1:", FreeTcpPort())),
                 {0});
}

// ---------------------------------------------------------------- in process

TEST(CollectiveTest, WorldSizeOneIsNoOp) {
  for (Backend backend : {Backend::kAuto, Backend::kGloo, Backend::kNccl}) {
    absl::StatusOr<std::unique_ptr<Collective>> comm = CreateCollective({}, backend);
    ASSERT_TRUE(comm.ok()) << comm.status();
    EXPECT_EQ((*comm)->rank(), 0);
    EXPECT_EQ((*comm)->world_size(), 1);
    std::vector<at::Tensor> tensors = {at::arange(4, at::kFloat), at::ones({2}, at::kDouble)};
    ASSERT_TRUE((*comm)->AllReduceSum(tensors).ok());
    ASSERT_TRUE((*comm)->AllReduceMean(tensors).ok());
    ASSERT_TRUE((*comm)->Broadcast(tensors, 0).ok());
    EXPECT_TRUE(at::equal(tensors[0], at::arange(4, at::kFloat)));
    EXPECT_TRUE((*comm)->Barrier().ok());
    EXPECT_EQ((*comm)->Broadcast(tensors, 1).code(), absl::StatusCode::kInvalidArgument);
    std::vector<at::Tensor> ints = {at::ones({2}, at::kLong)};
    EXPECT_EQ((*comm)->AllReduceMean(ints).code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(CollectiveTest, BadRendezvousIsInvalidArgument) {
  for (const char* rendezvous : {"", "nfs:/x", "file:", "tcp:", "tcp:host", "tcp::29500",
                                 "tcp:host:port", "tcp:host:0", "tcp:host:70000", "tcp:[::1"}) {
    CollectiveOptions options;
    options.world_size = 2;
    options.rendezvous = rendezvous;
    absl::StatusOr<std::unique_ptr<Collective>> comm = CreateCollective(options);
    EXPECT_EQ(comm.status().code(), absl::StatusCode::kInvalidArgument) << rendezvous;
    EXPECT_THAT(comm.status().message(), HasSubstr("expected file:/shared/dir or tcp:host:port"));
  }
  CollectiveOptions options;
  options.rendezvous = "bogus";  // checked even when world_size is 1
  EXPECT_EQ(CreateCollective(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CollectiveTest, BadRankOrTimeoutIsInvalidArgument) {
  CollectiveOptions options;
  options.rendezvous = "file:/tmp";
  for (auto [rank, world_size] : {std::pair{2, 2}, {-1, 2}, {0, 0}}) {
    options.rank = rank;
    options.world_size = world_size;
    EXPECT_EQ(CreateCollective(options).status().code(), absl::StatusCode::kInvalidArgument);
  }
  options.rank = 0;
  options.world_size = 2;
  options.timeout = absl::ZeroDuration();
  EXPECT_EQ(CreateCollective(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CollectiveTest, ParsesBackendNames) {
  for (Backend backend : {Backend::kAuto, Backend::kGloo, Backend::kNccl}) {
    EXPECT_EQ(ParseBackend(BackendName(backend)).value(), backend);
  }
  EXPECT_EQ(ParseBackend("mpi").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bpo::collective
