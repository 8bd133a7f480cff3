// bpo quickstart: the whole method on a laptop CPU, nothing downloaded
// (experiments/quickstart.h). This file holds the command's flags.
#include <filesystem>
#include <iostream>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "experiments/quickstart.h"

ABSL_FLAG(std::string, quickstart_dir, "runs/quickstart",
          "Where the quickstart writes everything.");
ABSL_FLAG(int64_t, quickstart_sft_steps, 1500, "SFT steps.");
ABSL_FLAG(int, quickstart_bpo_steps, 40, "BPO learner steps T (F = T/4 annotation phases).");
ABSL_FLAG(int64_t, quickstart_rm_steps, 300, "Reward-model training steps.");

namespace bpo::cli {
namespace {

int RunQuickstart(const std::vector<std::string>&) {
  experiments::QuickstartOptions o;
  o.dir =
      std::filesystem::absolute(absl::GetFlag(FLAGS_quickstart_dir)).lexically_normal().string();
  o.sft_steps = absl::GetFlag(FLAGS_quickstart_sft_steps);
  o.bpo_steps = absl::GetFlag(FLAGS_quickstart_bpo_steps);
  o.rm_steps = absl::GetFlag(FLAGS_quickstart_rm_steps);
  if (absl::Status s = experiments::Quickstart(o); !s.ok()) return Fail("quickstart", s);
  return kExitOk;
}

}  // namespace

const Command& QuickstartCommand() {
  static const Command kCommand{
      "quickstart",
      "The whole method in minutes on a CPU: task, SFT, BPO run, evaluation.",
      "bpo quickstart [--quickstart_dir DIR]",
      __FILE__,
      0,
      0,
      &RunQuickstart};
  return kCommand;
}

}  // namespace bpo::cli
