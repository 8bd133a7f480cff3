// The report's line plots: win rate vs F (Fig. 4), win rate during training
// and the learner's training curves.
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "eval/report.h"
#include "eval/stats.h"
#include "experiments/report.h"

namespace bpo::experiments {
namespace {

// Fig. 4's runs at annotation frequency f: the fig4 runs with F = f, and
// Table 1's offline (F = 1) and BPO (F = T) runs; tldr, DPO loss.
bool AtFrequency(const Experiment& e, int f, int steps) {
  if (e.task != "tldr" || e.loss != Loss::kDpo) return false;
  if (e.group == Group::kFig4) return e.phases == f;
  return e.group == Group::kTable1 &&
         ((f == 1 && e.phases == 1) || (f == steps && e.method == Method::kBpo));
}

// The evaluation of curve run `e` at `step`: the SFT policy at 0, the final
// adapter at T, a snapshot in between; null when it does not exist.
const RunResult* CurvePoint(const ReportData& d, const Experiment& e, int step) {
  const auto& evals = step == d.preset.steps ? d.runs : d.other_evals;
  const std::string id = step == 0                ? SftEvalId("tldr")
                         : step == d.preset.steps ? e.id
                                                  : CurveId(e, step);
  const auto it = evals.find(id);
  return it == evals.end() ? nullptr : &it->second;
}

}  // namespace

Section Fig4Section(const ReportData& d) {
  const Preset& p = d.preset;
  eval::LinePlot lp;
  lp.title = "BPO (DPO) on tldr: win rate vs F";
  lp.x_label = "F (annotation phases)";
  lp.y_label = "win rate";
  lp.log2_x = true;
  lp.y_min = 0;
  lp.y_max = 1;
  std::vector<std::vector<std::string>> rows;  // one per F, a column per metric
  for (const Metric metric : {Metric::kGreedyOracle, Metric::kGreedyRm, Metric::kSampleOracle}) {
    const bool first = metric == Metric::kGreedyOracle;
    eval::Series s;
    s.name = ShortMetricName(metric);
    for (int f : p.f_values) {
      const std::vector<double> v =
          d.Wins([&](const Experiment& e) { return AtFrequency(e, f, p.steps); }, metric);
      if (v.empty()) continue;
      const double m = eval::Mean(v), sd = eval::StdDev(v);
      s.x.push_back(f);
      s.y.push_back(m);
      s.y_low.push_back(m - sd);
      s.y_high.push_back(m + sd);
      if (first) {
        rows.push_back({absl::StrCat(f), absl::StrCat(p.steps / f), eval::FormatMeanStd(v)});
      } else if (rows.size() >= s.x.size()) {
        rows[s.x.size() - 1].push_back(eval::FormatMeanStd(v));
      }
    }
    lp.series.push_back(s);
  }
  Section out;
  out.markdown = absl::StrCat(
      "## Fig. 4: annotation frequency F (tldr, BPO with the DPO loss, ", p.steps * p.batch,
      " pairs in every run)\n\nF = 1 is offline DPO (Table 1's runs); F = T is on-policy BPO.\n\n",
      eval::MarkdownTable({"F", "K = T/F steps per phase", "win rate (greedy, oracle)",
                           "win rate (greedy, RM)", "win rate (samples, oracle)"},
                          rows),
      "\n");
  if (auto svg = eval::RenderLinePlotSvg(lp); svg.ok()) {
    out.files.push_back({"fig4-win-rate-vs-F.svg", *svg});
    absl::StrAppend(&out.markdown,
                    "![win rate vs F](fig4-win-rate-vs-F.svg)\n\nShaded: ± one standard deviation "
                    "over seeds.\n\n");
  }
  return out;
}

Section WinRateCurveSection(const ReportData& d) {
  eval::LinePlot lp;
  lp.title = "tldr, DPO: win rate during training (oracle)";
  lp.x_label = "learner step";
  lp.y_label = "win rate";
  lp.y_min = 0;
  lp.y_max = 1;
  std::vector<int> steps = {0};
  for (int step : CurveSteps(d.preset)) steps.push_back(step);
  steps.push_back(d.preset.steps);
  std::vector<std::vector<std::string>> rows;
  for (const Method method : {Method::kOnPolicy, Method::kBpo}) {
    for (const Metric metric : {Metric::kGreedyOracle, Metric::kSampleOracle}) {
      const bool greedy = metric == Metric::kGreedyOracle;
      eval::Series s;
      s.name = absl::StrCat(method == Method::kBpo ? "BPO" : "on-policy DPO",
                            greedy ? ", greedy" : ", samples");
      for (int step : steps) {
        std::vector<double> v;
        for (const Experiment& e : d.plan) {
          if (!IsCurveRun(e) || e.method != method) continue;
          if (const RunResult* r = CurvePoint(d, e, step)) v.push_back(Get(*r, metric));
        }
        if (v.empty()) continue;
        s.x.push_back(step);
        s.y.push_back(eval::Mean(v));
        rows.push_back({MethodLabel(method, Loss::kDpo), greedy ? "greedy" : "samples",
                        absl::StrCat(step), eval::FormatMeanStd(v)});
      }
      if (!s.x.empty()) lp.series.push_back(s);
    }
  }
  Section out;
  if (lp.series.empty()) return out;
  out.markdown =
      "## Win rate during training (tldr, DPO loss, oracle judge)\n\nEvaluated on the snapshots "
      "the on-policy runs published (one per step); step 0 is the SFT policy.\n\n";
  if (auto svg = eval::RenderLinePlotSvg(lp); svg.ok()) {
    out.files.push_back({"curve-win-rate.svg", *svg});
    out.markdown += "![win rate during training](curve-win-rate.svg)\n\n";
  }
  absl::StrAppend(&out.markdown,
                  eval::MarkdownTable({"method", "outputs", "step", "win rate (oracle)"}, rows),
                  "\n");
  return out;
}

Section TrainingCurvesSection(const ReportData& d) {
  Section out;
  out.markdown = "## Training curves (tldr, DPO loss, mean over seeds)\n\n";
  const std::vector<std::pair<std::string, std::string>> metrics = {
      {"loss", "loss"},
      {"margin", "margin β·h"},
      {"kl_reference", "KL to the reference"},
      {"kl_sft", "KL to SFT"}};
  for (const auto& [key, label] : metrics) {
    eval::LinePlot lp;
    lp.title = absl::StrCat("tldr, DPO: ", label);
    lp.x_label = "learner step";
    lp.y_label = label;
    lp.markers = false;
    for (const Method method : kTable1Methods) {
      eval::Series s;
      s.name = MethodLabel(method, Loss::kDpo);
      std::map<int, std::vector<double>> by_step;
      for (const Experiment& e : d.plan) {
        const auto steps = d.steps.find(e.id);
        if (e.group != Group::kTable1 || e.task != "tldr" || e.loss != Loss::kDpo ||
            e.method != method || steps == d.steps.end()) {
          continue;
        }
        for (const TrainingStep& step : steps->second) {
          if (auto it = step.metrics.find(key); it != step.metrics.end()) {
            by_step[step.step].push_back(it->second);
          }
        }
      }
      for (const auto& [step, v] : by_step) {
        s.x.push_back(step);
        s.y.push_back(eval::Mean(v));
      }
      if (!s.x.empty()) lp.series.push_back(s);
    }
    if (lp.series.empty()) continue;
    if (auto svg = eval::RenderLinePlotSvg(lp); svg.ok()) {
      const std::string file = absl::StrCat("curve-", key, ".svg");
      out.files.push_back({file, *svg});
      absl::StrAppend(&out.markdown, "![", label, "](", file, ")\n");
    }
  }
  out.markdown +=
      "\nKL values are the learner's estimate on each batch: mean over responses of log "
      "π_ref(y) − log π_θ(y) (to the run's reference, and to the SFT policy).\n\n";
  return out;
}

}  // namespace bpo::experiments
