#include "tests/testing/local_run.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator/sqlite.h"

namespace bpo::testing {

namespace fs = std::filesystem;

std::string WriteTinyConfig(const std::string& out_dir, const std::string& extra) {
  const std::string overrides =
      absl::StrCat("output_dir: ", out_dir, "\nmodel: {policy: ", BPO_SOURCE_DIR,
                   "/tests/fixtures/gemma}\n", "data: {prompts: ", BPO_SOURCE_DIR,
                   "/configs/prompts-tiny.jsonl, format: jsonl}\n", extra, "\n");
  std::set<std::string> replaced;
  for (absl::string_view line : absl::StrSplit(overrides, '\n')) {
    if (auto colon = line.find(':'); colon != absl::string_view::npos) {
      replaced.insert(std::string(line.substr(0, colon)));
    }
  }
  std::ifstream in(absl::StrCat(BPO_SOURCE_DIR, "/configs/local-tiny.yaml"));
  const std::string path = absl::StrCat(out_dir, "/run.yaml");
  std::ofstream f(path);
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon != std::string::npos && replaced.count(line.substr(0, colon))) continue;
    f << line << "\n";
  }
  f << overrides;
  return path;
}

int64_t QueryStore(const std::string& run_dir, const std::string& sql) {
  const std::string path = run_dir + "/coordinator.db";
  if (!fs::exists(path)) return -1;
  auto db = coordinator::Database::Open(path, {.fsync = false});
  if (!db.ok()) return -1;
  auto st = (*db)->Prepare(sql);
  if (!st.ok()) return -1;
  auto row = (*st)->Step();
  return row.ok() && *row ? (*st)->Int(0) : -1;
}

std::vector<std::string> CompleteRunViolations(const std::string& run_dir) {
  std::vector<std::string> out;
  auto expect = [&](const char* what, const std::string& sql, int64_t want) {
    const int64_t got = QueryStore(run_dir, sql);
    if (got != want) out.push_back(absl::StrCat(what, ": ", got, ", expected ", want));
  };
  expect("steps committed", "SELECT COUNT(*) FROM steps", kTinySteps);
  expect("pairs consumed", "SELECT COUNT(*) FROM pairs WHERE state = 5", kTinyPairs);
  expect("distinct pairs consumed", "SELECT COUNT(DISTINCT pair_id) FROM pairs WHERE state = 5",
         kTinyPairs);
  expect("batches of B",
         absl::StrCat("SELECT COUNT(*) FROM (SELECT step FROM pairs WHERE state = 5 "
                      "GROUP BY step HAVING COUNT(*) = ",
                      kTinyBatch, ")"),
         kTinySteps);
  expect("pairs annotated and left unused", "SELECT COUNT(*) FROM pairs WHERE state IN (3, 4)", 0);
  expect("consumed pairs without a label",
         "SELECT COUNT(*) FROM pairs WHERE state = 5 AND label IS NULL", 0);
  expect("consumed pairs labelled by an annotator",
         "SELECT COUNT(DISTINCT l.seq) FROM labels l JOIN pairs p ON p.seq = l.seq "
         "WHERE p.state = 5",
         kTinyPairs);
  if (!fs::exists(run_dir + "/adapter/adapter_model.safetensors")) {
    out.push_back("no final adapter in " + run_dir + "/adapter");
  }
  return out;
}

int ProcessPid(const std::string& run_dir, const std::string& name) {
  std::ifstream f(run_dir + "/pids/" + name + ".pid");
  int pid = -1;
  f >> pid;
  return pid;
}

}  // namespace bpo::testing
