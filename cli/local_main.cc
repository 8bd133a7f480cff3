// bpo local: a whole run on one machine. Starts the coordinator, the learner
// ranks, the actors and the annotators as separate processes on loopback
// ports, shows the run's progress, restarts or stops on a child's death as
// configured (launch.*), and stops everything cleanly on Ctrl-C. The launcher
// itself is launch/local_run.h (the run directory's layout is described
// there); this file reads the config and hands it over.
#include <ATen/Context.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "cli/worker.h"
#include "common/config.h"
#include "launch/local_run.h"

namespace bpo::cli {
namespace {

int RunLocal(const std::vector<std::string>&) {
  InstallStopHandlers();
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<RunConfigFile> file = path.empty() ? DefaultRunConfig() : LoadRunConfig(path);
  if (!file.ok()) return Fail("local", file.status());
  launch::LocalRunOptions options;
  options.config = std::move(file->config);
  options.config_source = file->source;
  options.stop_requested = &StopRequested;
  if (options.config.model().device() == "cuda" && at::hasCUDA()) {
    options.cuda_devices = static_cast<int>(at::getNumGPUs());
  }
  const absl::StatusOr<int> code = launch::RunLocal(std::move(options));
  return code.ok() ? *code : Fail("local", code.status());
}

}  // namespace

const Command& LocalCommand() {
  static const Command kCommand{
      "local",
      "Run everything on this machine: coordinator, actors, annotators, learner ranks.",
      "bpo local --config FILE",
      __FILE__,
      0,
      0,
      &RunLocal,
      {},
      {"config"}};
  return kCommand;
}

}  // namespace bpo::cli
