#include "launch/metrics_targets.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/address_file.h"
#include "common/files.h"
#include "nlohmann/json.hpp"

namespace bpo::launch {

Labels ScrapeLabels(const std::string& run_id, const std::string& process, const Labels& extra) {
  Labels labels = extra;
  labels["run_id"] = run_id;
  labels["process"] = process;
  int rank = -1;
  if (process == "coordinator") {
    labels["role"] = "coordinator";
  } else if (absl::StartsWith(process, "learner-") && absl::SimpleAtoi(process.substr(8), &rank)) {
    labels["role"] = "learner";
    labels["rank"] = absl::StrCat(rank);
  } else if (absl::StartsWith(process, "actor")) {
    labels["role"] = "actor";
  } else if (absl::StartsWith(process, "annotator") || process == "human") {
    labels["role"] = "annotator";
  }
  return labels;
}

std::string FormatScrapeTargets(const std::string& run_id, const std::vector<ScrapeTarget>& targets,
                                const Labels& extra) {
  nlohmann::json groups = nlohmann::json::array();
  for (const ScrapeTarget& t : targets) {
    groups.push_back(
        {{"targets", {t.address}}, {"labels", ScrapeLabels(run_id, t.process, extra)}});
  }
  return groups.dump(2) + "\n";
}

absl::Status MetricsTargets::Refresh(std::vector<ScrapeTarget>* changed) {
  for (const std::string& process : options_.processes) {
    absl::StatusOr<std::string> metrics = ResolveEndpoint(
        absl::StrCat("file:", options_.addresses_dir, "/", process, ".json"), "metrics");
    if (!metrics.ok() || metrics->empty() || known_[process] == *metrics) continue;
    known_[process] = *metrics;
    dirty_ = true;
    if (changed != nullptr) changed->push_back({process, *metrics});
  }
  if (!dirty_) return absl::OkStatus();
  std::vector<ScrapeTarget> targets;
  for (const std::string& process : options_.processes) {
    auto it = known_.find(process);
    if (it != known_.end() && !it->second.empty()) targets.push_back({process, it->second});
  }
  absl::Status written = WriteFileAtomically(
      options_.path, FormatScrapeTargets(options_.run_id, targets, options_.extra_labels));
  if (written.ok()) dirty_ = false;
  return written;
}

}  // namespace bpo::launch
