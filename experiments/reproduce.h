// `bpo reproduce`: the paper's comparisons at small scale, every run through
// the distributed system (`bpo local`) on the built-in synthetic tasks, then
// the report (experiments/report.h). Per task the setup is shared: data, an
// SFT policy and a reward model trained from scratch (experiments/
// task_setup.h), and the SFT policy's evaluation. Everything is resumable: a
// step whose output exists is skipped, an interrupted `bpo local` resumes
// from its store and checkpoints. Progress goes to stdout.
#ifndef BPO_EXPERIMENTS_REPRODUCE_H_
#define BPO_EXPERIMENTS_REPRODUCE_H_

#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "experiments/plan.h"

namespace bpo::experiments {

struct ReproduceOptions {
  Preset preset = QuickPreset();
  std::string root;                     // the reproduce directory, absolute
  std::string report_dir;               // absolute; usually <root>/report
  std::optional<std::set<Group>> only;  // restricts the plan to these groups
  bool report_only = false;             // only write the report from what finished
};

// Sets up the tasks, runs and evaluates every planned run not finished yet
// (a failed run is reported and skipped; a rerun retries it), evaluates the
// win-rate curves' snapshots and writes the report. INTERNAL when a task's
// setup or its SFT evaluation fails (naming the log), or the report cannot
// be written.
absl::Status Reproduce(const ReproduceOptions& options);

}  // namespace bpo::experiments

#endif  // BPO_EXPERIMENTS_REPRODUCE_H_
