// bpo reproduce: the paper's comparisons at small scale through bpo local,
// with a Markdown + SVG report (experiments/reproduce.h). This file holds the
// command's flags.
#include <filesystem>
#include <iostream>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "experiments/reproduce.h"

ABSL_FLAG(std::string, reproduce_dir, "runs/reproduce", "Where the runs go.");
ABSL_FLAG(std::string, report_dir, "", "Where the report goes (default: <reproduce_dir>/report).");
ABSL_FLAG(bool, quick, false, "The quick preset: under an hour on 2 CPU cores.");
ABSL_FLAG(bool, report_only, false, "Only write the report from the finished runs.");
ABSL_FLAG(std::string, only, "",
          "Only the experiments whose group is listed (table1,fig4,fig5,fig6,fig7,merge).");

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;

int RunReproduce(const std::vector<std::string>&) {
  experiments::ReproduceOptions o;
  o.preset = absl::GetFlag(FLAGS_quick) ? experiments::QuickPreset() : experiments::FullPreset();
  o.root = fs::absolute(absl::GetFlag(FLAGS_reproduce_dir)).lexically_normal().string();
  const std::string report_dir = absl::GetFlag(FLAGS_report_dir);
  o.report_dir = report_dir.empty() ? o.root + "/report"
                                    : fs::absolute(report_dir).lexically_normal().string();
  o.report_only = absl::GetFlag(FLAGS_report_only);
  if (const std::string only = absl::GetFlag(FLAGS_only); !only.empty()) {
    auto groups = experiments::ParseGroups(only);
    if (!groups.ok()) {
      std::cerr << "bpo reproduce: --only: " << groups.status().message() << "\n";
      return kExitUsage;
    }
    o.only = *groups;
  }
  if (absl::Status s = experiments::Reproduce(o); !s.ok()) return Fail("reproduce", s);
  return kExitOk;
}

}  // namespace

const Command& ReproduceCommand() {
  static const Command kCommand{
      "reproduce",
      "The paper's comparisons (Table 1, Figs. 4-7) at small scale through bpo local; writes a "
      "report.",
      "bpo reproduce [--quick] [--reproduce_dir DIR] [--report_dir DIR] [--only table1,fig4,...]",
      __FILE__,
      0,
      0,
      &RunReproduce};
  return kCommand;
}

}  // namespace bpo::cli
