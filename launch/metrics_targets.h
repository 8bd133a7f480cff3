// Prometheus file-based discovery of a run's processes: the JSON that
// `file_sd_configs` reads, kept equal to the /metrics addresses the processes
// publish in their address files (common/address_file.h). `bpo local` and
// the Slurm batch script (`bpo deploy watch`) write <run dir>/
// prometheus-targets.json with it, so every deployment gives its series the
// same labels (deploy/grafana/bpo-run.json reads them):
//   run_id   the run
//   process  coordinator, learner-<rank>, actor-<i>, annotator-<i>, human
//   role     coordinator, learner, actor or annotator (human: annotator)
//   rank     the learner rank (learner ranks only)
// plus any extra labels the launcher adds (slurm_job_id). `job` is left to the
// scrape config's job_name.
#ifndef BPO_LAUNCH_METRICS_TARGETS_H_
#define BPO_LAUNCH_METRICS_TARGETS_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace bpo::launch {

using Labels = std::map<std::string, std::string>;

struct ScrapeTarget {
  std::string process;  // "coordinator", "learner-1", "actor-0", "human", ...
  std::string address;  // host:port of its /metrics
};

// The labels of `process` in run `run_id` (above), with `extra` added.
Labels ScrapeLabels(const std::string& run_id, const std::string& process,
                    const Labels& extra = {});

// `targets` as file_sd JSON: one group per process, in the given order.
std::string FormatScrapeTargets(const std::string& run_id, const std::vector<ScrapeTarget>& targets,
                                const Labels& extra = {});

struct MetricsTargetsOptions {
  std::vector<std::string> processes;  // in the order the file lists them
  std::string addresses_dir;           // <addresses_dir>/<process>.json
  std::string path;                    // the file written
  std::string run_id;
  Labels extra_labels;
};

// Keeps options.path equal to the "metrics" entries of the processes'
// address files. Not thread-safe.
class MetricsTargets {
 public:
  explicit MetricsTargets(MetricsTargetsOptions options) : options_(std::move(options)) {}

  // Reads every process's address file and rewrites the targets file
  // (atomically) when an address appeared or moved (a restarted process has a
  // new port). Returns the targets that appeared or moved; an error when the
  // file cannot be written (the next call tries again).
  absl::Status Refresh(std::vector<ScrapeTarget>* changed = nullptr);

 private:
  const MetricsTargetsOptions options_;
  std::map<std::string, std::string> known_;  // process -> its /metrics address
  bool dirty_ = false;                        // the file lags known_
};

}  // namespace bpo::launch

#endif  // BPO_LAUNCH_METRICS_TARGETS_H_
