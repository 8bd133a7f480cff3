// Chaos: `bpo local` runs on the tiny config with kill -9 of random
// processes (coordinator, learner ranks, actors, annotators) at random
// moments, in strict and async mode, under both learner failure policies.
// A launcher that stops before the run is finished is launched again, as an
// operator would. After each run the store must hold exactly F*M distinct
// pairs consumed in T batches of B, every one labelled, none annotated and
// left unused; every strict run must end with bitwise the same adapter.
//
//   BPO_CHAOS_RUNS     runs (default 3: the CI's share; scripts/chaos runs more)
//   BPO_CHAOS_SEED     the campaign's random seed (default 1)
//   BPO_CHAOS_REPORT   a file that gets one JSON line per run, then a summary
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/local_run.h"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoll(v, nullptr, 10) : fallback;
}

// "learner-1" -> "learner".
std::string Kind(const std::string& process) { return process.substr(0, process.find('-')); }

struct Kill {
  int64_t after_steps;   // once this many steps are committed ...
  absl::Duration delay;  // ... and this long after that
};

TEST(ChaosTest, RandomKillsNeverLoseOrReuseAPairAndEveryRunFinishes) {
  const int64_t runs = EnvInt("BPO_CHAOS_RUNS", 3);
  const uint64_t seed = static_cast<uint64_t>(EnvInt("BPO_CHAOS_SEED", 1));
  const char* report_path = std::getenv("BPO_CHAOS_REPORT");
  std::ofstream report;
  if (report_path != nullptr && *report_path != '\0') report.open(report_path);
  const fs::path base = fs::temp_directory_path() / absl::StrCat("bpo_chaos_", getpid());
  fs::remove_all(base);
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  std::map<std::string, std::set<std::string>> adapters;  // mode -> sha256s
  std::map<std::string, int64_t> kills_by_kind;
  int64_t failed_runs = 0, relaunches = 0, kills_total = 0;

  for (int64_t run = 0; run < runs; ++run) {
    const std::string mode = uniform(0, 1) == 0 ? "strict" : "async";
    const std::string policy = uniform(0, 1) == 0 ? "stop" : "restart";
    std::vector<Kill> plan(static_cast<size_t>(uniform(1, 3)));
    for (Kill& k : plan) {
      k.after_steps = uniform(0, testing::kTinySteps - 1);
      k.delay = absl::Milliseconds(uniform(0, 700));
    }
    std::sort(plan.begin(), plan.end(),
              [](const Kill& a, const Kill& b) { return a.after_steps < b.after_steps; });
    const std::string out = (base / absl::StrCat("run-", run)).string();
    fs::create_directories(out);
    const std::string config = testing::WriteTinyConfig(
        out, absl::StrCat("schedule: {total_steps: 8, phases: 4, batch_size: 4, mode: ", mode,
                          ", max_staleness: 1}\nlaunch: {actors: 2, annotators: 1, "
                          "on_learner_failure: ",
                          policy, "}"));
    const std::string run_dir = out + "/local-tiny";
    std::vector<std::string> killed, problems;
    std::vector<int> exit_codes;
    size_t next = 0;
    absl::Time reached = absl::InfiniteFuture();  // when plan[next]'s step count was reached
    for (int launch = 0; launch < 6; ++launch) {
      auto local = testing::Subprocess::Start({BPO_BINARY, "local", "--config", config},
                                              absl::StrCat(out, "/local-", launch, ".log"));
      ASSERT_TRUE(local.ok()) << local.status();
      const absl::Time deadline = absl::Now() + absl::Seconds(300);
      while (local->Running() && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(50));
        if (next >= plan.size()) continue;
        const int64_t steps = testing::QueryStore(run_dir, "SELECT COUNT(*) FROM steps");
        if (steps < plan[next].after_steps) continue;
        if (reached == absl::InfiniteFuture()) reached = absl::Now();
        if (absl::Now() < reached + plan[next].delay) continue;
        // A random live process of the run.
        std::vector<std::pair<std::string, pid_t>> alive;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(run_dir + "/pids", ec)) {
          const std::string name = e.path().stem().string();
          const pid_t pid = testing::ProcessPid(run_dir, name);
          if (pid > 0 && kill(pid, 0) == 0) alive.emplace_back(name, pid);
        }
        if (alive.empty()) continue;
        const auto& [name, pid] = alive[static_cast<size_t>(uniform(0, alive.size() - 1))];
        if (kill(pid, SIGKILL) == 0) {
          killed.push_back(absl::StrCat(name, "@", steps));
          ++kills_by_kind[Kind(name)];
          ++kills_total;
        }
        ++next;
        reached = absl::InfiniteFuture();
      }
      if (local->Running()) {
        problems.push_back(absl::StrCat("launch ", launch, " did not finish in 300 s"));
        break;
      }
      exit_codes.push_back(local->exit_code());
      const int64_t steps = testing::QueryStore(run_dir, "SELECT COUNT(*) FROM steps");
      // Finished: every step committed and the adapter exported (a learner
      // killed in between leaves the export to the next launch).
      if (steps == testing::kTinySteps &&
          fs::exists(run_dir + "/adapter/adapter_model.safetensors")) {
        if (local->exit_code() != 0)
          problems.push_back(
              absl::StrCat("finished, but the launcher exited ", local->exit_code()));
        break;
      }
      if (local->exit_code() == 0) {
        problems.push_back(absl::StrCat("the launcher exited 0 after ", steps, " steps"));
      }
      ++relaunches;  // stopped before the end (e.g. on_learner_failure: stop): launch again
    }
    for (std::string& v : testing::CompleteRunViolations(run_dir)) problems.push_back(v);
    std::string sha;
    if (auto adapter = ReadWholeFile(run_dir + "/adapter/adapter_model.safetensors");
        adapter.ok()) {
      sha = Sha256Hex(*adapter);
      adapters[mode].insert(sha);
    }
    EXPECT_THAT(problems, ::testing::IsEmpty())
        << "run " << run << " (" << mode << ", on_learner_failure: " << policy
        << ", kills: " << absl::StrJoin(killed, " ") << "); logs in " << out;
    if (!problems.empty()) ++failed_runs;
    const nlohmann::json line = {{"run", run},
                                 {"mode", mode},
                                 {"on_learner_failure", policy},
                                 {"kills", killed},
                                 {"launcher_exit_codes", exit_codes},
                                 {"problems", problems},
                                 {"adapter_sha256", sha}};
    std::cout << line.dump() << std::endl;
    if (report.is_open()) report << line.dump() << "\n" << std::flush;
    if (problems.empty()) fs::remove_all(out);
  }
  // Strict runs are a function of their config, whatever was killed.
  EXPECT_LE(adapters["strict"].size(), 1u) << "strict runs ended with different adapters";
  const nlohmann::json summary = {{"summary", true},
                                  {"runs", runs},
                                  {"seed", seed},
                                  {"failed_runs", failed_runs},
                                  {"relaunches", relaunches},
                                  {"kills", kills_total},
                                  {"kills_by_kind", kills_by_kind},
                                  {"distinct_strict_adapters", adapters["strict"].size()},
                                  {"distinct_async_adapters", adapters["async"].size()}};
  std::cout << summary.dump() << std::endl;
  if (report.is_open()) report << summary.dump() << "\n";
  if (failed_runs == 0) fs::remove_all(base);
}

}  // namespace
}  // namespace bpo
