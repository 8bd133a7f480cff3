// `bpo reproduce`'s report (<report_dir>/report.md with SVG figures,
// results.json and the runs' configs), one function per table or figure.
// Every section is a pure function of a ReportData (experiments/
// report_data.h): its Markdown and the SVG files it links. Runs are selected
// by their typed keys (group, task, loss, method, members, ...), never by
// their labels. Table cells are mean ± standard deviation over seeds; a
// section whose runs have not finished shows "n/a" cells or is left out, as
// each function says.
#ifndef BPO_EXPERIMENTS_REPORT_H_
#define BPO_EXPERIMENTS_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "experiments/report_data.h"
#include "nlohmann/json.hpp"

namespace bpo::experiments {

struct SvgFile {
  std::string name;  // relative to the report directory
  std::string svg;
};

struct Section {
  std::string markdown;
  std::vector<SvgFile> files;  // the figures the Markdown links
};

// Title, provenance, the setup, the reward models' held-out accuracy and the
// SFT policies' win rates.
Section HeaderSection(const ReportData& d);

// Table 1 for one metric: the three methods x three losses by task.
Section Table1Section(const ReportData& d, Metric metric);

// Fig. 3: median, IQM and mean over tasks x losses x seeds per method with
// stratified-bootstrap 95% CIs (2000 resamples, seed 0): a table and an
// interval plot (aggregate-greedy.svg or aggregate-samples.svg).
Section AggregateSection(const ReportData& d, Metric metric);

// Fig. 4: BPO (DPO) on tldr by annotation frequency F (F = 1 and F = T from
// Table 1): a table and fig4-win-rate-vs-F.svg (± one standard deviation).
Section Fig4Section(const ReportData& d);

// Figs. 5-7 and the merge modes: one table each of tldr DPO-loss variants
// (rows with no finished run are left out).
Section Fig5Section(const ReportData& d);
Section Fig6Section(const ReportData& d);
Section Fig7Section(const ReportData& d);
Section MergeSection(const ReportData& d);
// The gold policy's own win rates; empty when it has not finished.
Section GoldReferenceSection(const ReportData& d);

// Win rate during training of on-policy DPO and BPO (curve-win-rate.svg and a
// table); empty when no curve point exists.
Section WinRateCurveSection(const ReportData& d);

// Loss, margin and KLs per learner step of Table 1's tldr DPO runs, mean over
// seeds (curve-loss.svg, curve-margin.svg, curve-kl_reference.svg,
// curve-kl_sft.svg; a plot without data is left out).
Section TrainingCurvesSection(const ReportData& d);

// Every planned run's numbers ("not run" when it has not finished).
Section EveryRunSection(const ReportData& d);

// results.json: every finished run's six numbers, by run id.
nlohmann::json ResultsJson(const ReportData& d);

// All sections above in order, as report.md.
Section FullReport(const ReportData& d);

// Writes FullReport's report.md and figures, results.json and the finished
// runs' configs (copied from <root>/configs) into `report_dir`, creating it.
// INTERNAL naming the path when a file cannot be written or copied.
absl::Status WriteReport(const ReportData& d, const std::string& root,
                         const std::string& report_dir);

}  // namespace bpo::experiments

#endif  // BPO_EXPERIMENTS_REPORT_H_
