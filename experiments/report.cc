// The report's text and tables; the line plots are in report_figures.cc.
#include "experiments/report.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "eval/report.h"
#include "eval/stats.h"

namespace bpo::experiments {
namespace {

namespace fs = std::filesystem;

bool IsTable1(const Experiment& e, const std::string& task, Method method, Loss loss) {
  return e.group == Group::kTable1 && e.task == task && e.method == method && e.loss == loss;
}

// One row of a variants table: its label and the runs it averages.
struct Variant {
  std::string label;
  std::function<bool(const Experiment&)> pick;
};

// Table 1's tldr DPO-loss run of `method`.
std::function<bool(const Experiment&)> Table1Tldr(Method method) {
  return [=](const Experiment& e) { return IsTable1(e, "tldr", method, Loss::kDpo); };
}

// The DPO-loss runs of `group` and `method` with `members` LoRAs (0: any).
std::function<bool(const Experiment&)> Variants(Group group, Method method, int members = 0) {
  return [=](const Experiment& e) {
    return e.group == group && e.method == method && e.loss == Loss::kDpo &&
           (members == 0 || e.members == members);
  };
}

Section VariantTable(const ReportData& d, const std::string& title,
                     const std::vector<Variant>& variants) {
  std::vector<std::vector<std::string>> rows;
  for (const Variant& v : variants) {
    const auto o = d.Wins(v.pick, Metric::kGreedyOracle), r = d.Wins(v.pick, Metric::kGreedyRm),
               so = d.Wins(v.pick, Metric::kSampleOracle);
    if (o.empty()) continue;
    rows.push_back({v.label, eval::FormatMeanStd(o), eval::FormatMeanStd(r),
                    eval::FormatMeanStd(so), absl::StrCat(o.size())});
  }
  return {
      absl::StrCat("## ", title, " (tldr)\n\n",
                   eval::MarkdownTable({"run", "win rate (greedy, oracle)", "win rate (greedy, RM)",
                                        "win rate (samples, oracle)", "seeds"},
                                       rows),
                   "\n")};
}

void Append(Section& to, Section from) {
  to.markdown += from.markdown;
  for (SvgFile& f : from.files) to.files.push_back(std::move(f));
}

}  // namespace

Section HeaderSection(const ReportData& d) {
  const Preset& p = d.preset;
  std::ostringstream md;
  md << "# bpo reproduce: the paper's comparisons at small scale (" << p.name << " preset)\n\n"
     << "Every number below was measured by `bpo reproduce" << (p.name == "quick" ? " --quick" : "")
     << "` (runs started at commit `" << d.runs_commit << "`; report written at `"
     << d.report_commit << "`) on a 2-core machine, " << d.elapsed
     << " from the first setup step to the last evaluation (" << d.runs.size() << " of "
     << d.plan.size() << " runs finished). The numbers are what they are: where BPO does not beat "
     << "a baseline at this scale, the tables say so.\n\n"
     << "## Setup\n\n"
     << "- Tasks: the built-in synthetic `tldr` (summarisation, TL;DR format) and `dialogue` "
     << "(arithmetic questions in the helpfulness format); see docs/experiments.md.\n"
     << "- Per task: a 2-layer 128-wide Llama and a 512-piece tokenizer trained from scratch ("
     << p.sft_steps << " SFT steps); a 2-layer 128-wide DeBERTa-v3-style reward model trained with "
     << "Bradley–Terry (" << p.rm_steps
     << " steps) on pairs sampled from the SFT policy on the SFT "
     << "prompts (up to " << p.rm_pairs << " samplings) and labelled by the task's hidden oracle, "
     << "ties dropped. The RM is the annotator of every run.\n"
     << "- Every run goes through the distributed system (`bpo local`: coordinator, 2 actors, the "
     << "RM annotator, 2 learner ranks): T = " << p.steps << " steps of B = " << p.batch
     << " pairs, loss β = 0.1, LoRA rank " << p.lora_rank << " on all linear layers, ensemble of "
     << p.members << " members (merged as the exact mean of deltas), AdamW lr " << p.lr
     << ", responses of at most " << p.max_new_tokens << " tokens, seeds "
     << absl::StrJoin(p.seeds, ", ") << ".\n"
     << "- Evaluation: greedy outputs on " << p.test_prompts << " test prompts; win rate = share "
     << "of outputs scored strictly above the prompt's human-like reference. Two judges: the "
     << "trained RM (what the annotator rewards) and the task's hidden oracle (what the task "
     << "wants). A policy that gains on the RM but not on the oracle is over-optimising the RM.\n"
     << "- Table cells: mean ± standard deviation over seeds.\n\n";
  for (const RewardModelSummary& rm : d.reward_models) {
    md << absl::StrFormat(
        "Reward model for `%s`: %d training pairs, held-out accuracy against the oracle "
        "%.3f on %d pairs.\n",
        rm.task, rm.train_pairs, rm.heldout_accuracy, rm.heldout_pairs);
  }
  md << "\n";
  std::vector<std::string> parts;
  for (const auto& [id, r] : d.other_evals) {
    for (const std::string& task : p.tasks) {
      if (id != SftEvalId(task)) continue;
      parts.push_back(
          absl::StrFormat("%s %.3f (RM judge), %.3f (oracle)", task, r.win_rm, r.win_oracle));
    }
  }
  if (!parts.empty()) {
    md << "SFT policy (the starting point of every run), win rate: " << absl::StrJoin(parts, "; ")
       << ".\n\n";
  }
  return {md.str()};
}

Section Table1Section(const ReportData& d, Metric metric) {
  std::vector<std::string> header = {"method"};
  for (const auto& t : d.preset.tasks) header.push_back(t);
  std::vector<std::vector<std::string>> rows;
  for (const Loss loss : kAllLosses) {
    for (const Method method : kTable1Methods) {
      const std::string label = MethodLabel(method, loss);
      std::vector<std::string> row = {method == Method::kBpo ? "**" + label + "**" : label};
      for (const auto& t : d.preset.tasks) {
        row.push_back(eval::FormatMeanStd(
            d.Wins([&](const Experiment& e) { return IsTable1(e, t, method, loss); }, metric)));
      }
      rows.push_back(row);
    }
  }
  return {absl::StrCat("## Table 1: win rate against the references, ", MetricName(metric), "\n\n",
                       eval::MarkdownTable(header, rows), "\n")};
}

Section AggregateSection(const ReportData& d, Metric metric) {
  eval::IntervalPlot ip;
  ip.title =
      absl::StrCat("Win rate (", ShortMetricName(metric), "), tasks x losses x seeds, 95% CIs");
  ip.x_label = "win rate against the references";
  ip.panels = {"Median", "IQM", "Mean"};
  ip.rows_per_panel.resize(3);
  std::vector<std::vector<std::string>> rows;
  for (const Method method : kTable1Methods) {
    const std::string name = method == Method::kOffline    ? "Offline DAP"
                             : method == Method::kOnPolicy ? "On-policy DAP"
                                                           : "On-policy BPO";
    eval::ScoreMatrix m;
    for (const auto& t : d.preset.tasks) {
      std::vector<double> v = d.Wins(
          [&](const Experiment& e) {
            return e.group == Group::kTable1 && e.task == t && e.method == method;
          },
          metric);
      if (!v.empty()) m.push_back(v);
    }
    if (m.empty()) continue;
    const eval::AggregateIntervals a = eval::BootstrapAggregates(m, 2000, 0.95, 0);
    std::vector<std::string> row = {name};
    size_t panel = 0;
    for (const eval::Interval& ci : {a.median, a.iqm, a.mean}) {
      ip.rows_per_panel[panel++].push_back({name, ci.estimate, ci.lower, ci.upper});
      row.push_back(eval::FormatEstimate(ci.estimate, ci.lower, ci.upper));
    }
    rows.push_back(row);
  }
  Section s;
  s.markdown = absl::StrCat(
      "## Aggregate over tasks, losses and seeds (as the paper's Fig. 3): ", MetricName(metric),
      "\n\n",
      eval::MarkdownTable({"method", "median [95% CI]", "IQM [95% CI]", "mean [95% CI]"}, rows),
      "\n");
  if (!ip.rows_per_panel[0].empty()) {
    if (auto svg = eval::RenderIntervalPlotSvg(ip); svg.ok()) {
      const std::string file =
          metric == Metric::kGreedyOracle ? "aggregate-greedy.svg" : "aggregate-samples.svg";
      s.files.push_back({file, *svg});
      absl::StrAppend(&s.markdown, "![aggregate](", file, ")\n\n");
    }
  }
  return s;
}

Section Fig5Section(const ReportData& d) {
  return VariantTable(d, "Fig. 5: a stronger static reference (gold) for on-policy DPO",
                      {{"On-policy DPO, SFT reference", Table1Tldr(Method::kOnPolicy)},
                       {"On-policy DPO, gold reference", Variants(Group::kFig5, Method::kOnPolicy)},
                       {"On-policy BPO (DPO)", Table1Tldr(Method::kBpo)}});
}

Section Fig6Section(const ReportData& d) {
  const int m = d.preset.members;
  return VariantTable(
      d, "Fig. 6: one LoRA vs an ensemble",
      {{"BPO (DPO), one LoRA", Variants(Group::kFig6, Method::kBpo, 1)},
       {absl::StrCat("BPO (DPO), ensemble of ", m), Table1Tldr(Method::kBpo)},
       {"BPO (DPO), ensemble of 5", Variants(Group::kFig6, Method::kBpo, 5)},
       {"On-policy DPO, one LoRA", Variants(Group::kFig6, Method::kOnPolicy, 1)},
       {absl::StrCat("On-policy DPO, ensemble of ", m), Table1Tldr(Method::kOnPolicy)},
       {"On-policy DPO, ensemble of 5", Variants(Group::kFig6, Method::kOnPolicy, 5)}});
}

Section Fig7Section(const ReportData& d) {
  return VariantTable(
      d, "Fig. 7: one LoRA with an EMA reference (rate 0.1) vs the behavior reference",
      {{"On-policy DPO, one LoRA, EMA reference", Variants(Group::kFig7, Method::kOnPolicy)},
       {"BPO (DPO), one LoRA", Variants(Group::kFig6, Method::kBpo, 1)},
       {absl::StrCat("BPO (DPO), ensemble of ", d.preset.members), Table1Tldr(Method::kBpo)}});
}

Section MergeSection(const ReportData& d) {
  return VariantTable(d, "LoRA merge modes of the ensemble",
                      {{"mean_delta (exact mean of deltas)", Table1Tldr(Method::kBpo)},
                       {"peft_linear (PEFT's linear add_weighted_adapter)",
                        Variants(Group::kMerge, Method::kBpo)}});
}

Section GoldReferenceSection(const ReportData& d) {
  for (const Experiment& e : d.plan) {
    if (e.method != Method::kGold) continue;
    const auto it = d.runs.find(e.id);
    if (it == d.runs.end()) continue;
    return {
        absl::StrFormat("The gold reference (BPO with the DPO loss, %d steps, seed %d) wins %.3f "
                        "(oracle) and %.3f (RM).\n\n",
                        e.steps, e.seed, it->second.win_oracle, it->second.win_rm)};
  }
  return {};
}

Section EveryRunSection(const ReportData& d) {
  std::vector<std::vector<std::string>> rows;
  for (const Experiment& e : d.plan) {
    const auto it = d.runs.find(e.id);
    if (it == d.runs.end()) {
      rows.push_back({e.id, Label(e), absl::StrCat(e.seed), "not run", "", "", "", ""});
      continue;
    }
    const RunResult& r = it->second;
    rows.push_back({e.id, Label(e), absl::StrCat(e.seed), absl::StrFormat("%.3f", r.win_oracle),
                    absl::StrFormat("%.3f", r.diff_oracle), absl::StrFormat("%.3f", r.win_rm),
                    absl::StrFormat("%.3f", r.diff_rm),
                    absl::StrFormat("%.3f", r.sample_win_oracle)});
  }
  return {absl::StrCat(
      "## Every run\n\nConfigs: `configs/<run>.yaml` beside this report (the exact files `bpo "
      "local` ran; paths are those of the machine that ran them).\n\n",
      eval::MarkdownTable({"run", "method", "seed", "win (oracle)", "reward diff (oracle)",
                           "win (RM)", "reward diff (RM)", "win (samples, oracle)"},
                          rows))};
}

nlohmann::json ResultsJson(const ReportData& d) {
  nlohmann::json all = nlohmann::json::object();
  for (const auto& [id, r] : d.runs) {
    all[id] = {{"win_rate_oracle", r.win_oracle},
               {"win_rate_rm", r.win_rm},
               {"reward_diff_oracle", r.diff_oracle},
               {"reward_diff_rm", r.diff_rm},
               {"sample_win_rate_oracle", r.sample_win_oracle},
               {"sample_win_rate_rm", r.sample_win_rm}};
  }
  return all;
}

Section FullReport(const ReportData& d) {
  Section s = HeaderSection(d);
  for (const Metric m : {Metric::kGreedyOracle, Metric::kGreedyRm, Metric::kSampleOracle}) {
    Append(s, Table1Section(d, m));
  }
  for (const Metric m : {Metric::kGreedyOracle, Metric::kSampleOracle}) {
    Append(s, AggregateSection(d, m));
  }
  for (auto* section :
       {&Fig4Section, &Fig5Section, &Fig6Section, &Fig7Section, &MergeSection,
        &GoldReferenceSection, &WinRateCurveSection, &TrainingCurvesSection, &EveryRunSection}) {
    Append(s, section(d));
  }
  return s;
}

absl::Status WriteReport(const ReportData& d, const std::string& root,
                         const std::string& report_dir) {
  std::error_code ec;
  fs::create_directories(report_dir + "/configs", ec);
  if (ec) return absl::InternalError(absl::StrCat(report_dir, "/configs: ", ec.message()));
  const Section report = FullReport(d);
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(report_dir, "/", name);
    std::ofstream f(path);
    f << text;
    return f ? absl::OkStatus() : absl::InternalError(absl::StrCat(path, ": cannot write"));
  };
  for (const SvgFile& f : report.files) {
    if (absl::Status s = write(f.name, f.svg); !s.ok()) return s;
  }
  for (const Experiment& e : d.plan) {
    if (!d.runs.count(e.id)) continue;
    const std::string to = absl::StrCat(report_dir, "/configs/", e.id, ".yaml");
    fs::copy_file(ConfigPath(root, e.id), to, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("copying ", ConfigPath(root, e.id), " to ", to, ": ", ec.message()));
    }
  }
  if (absl::Status s = write("report.md", report.markdown); !s.ok()) return s;
  return write("results.json", ResultsJson(d).dump(1) + "\n");
}

}  // namespace bpo::experiments
