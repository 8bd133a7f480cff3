// Helpers for the tests that run `bpo local` on configs/local-tiny.yaml:
// writing the config, reading the coordinator's store, and the invariants a
// finished run must satisfy (shared by local_run_test and chaos_test).
#ifndef BPO_TESTS_TESTING_LOCAL_RUN_H_
#define BPO_TESTS_TESTING_LOCAL_RUN_H_

#include <cstdint>
#include <string>
#include <vector>

namespace bpo::testing {

// configs/local-tiny.yaml: T = 8 steps of B = 4 in F = 4 phases, F*M = 32.
constexpr int kTinySteps = 8, kTinyBatch = 4, kTinyPairs = 32;

// Writes <out_dir>/run.yaml: configs/local-tiny.yaml with the output in
// `out_dir`, absolute model and data paths, and the top-level keys of
// `extra` (YAML lines) replacing the file's. Returns its path.
std::string WriteTinyConfig(const std::string& out_dir, const std::string& extra = "");

// The first column of the first row of `sql` on the run's store, or -1 when
// the store or the row does not exist.
int64_t QueryStore(const std::string& run_dir, const std::string& sql);

// What is wrong with a run that should be complete (empty when nothing is):
// T committed steps; exactly F*M pairs consumed, all distinct, in T batches
// of B; every consumed pair labelled by an annotator; no pair annotated and
// left unused; the final adapter written.
std::vector<std::string> CompleteRunViolations(const std::string& run_dir);

// The pid in <run_dir>/pids/<name>.pid, or -1.
int ProcessPid(const std::string& run_dir, const std::string& name);

}  // namespace bpo::testing

#endif  // BPO_TESTS_TESTING_LOCAL_RUN_H_
