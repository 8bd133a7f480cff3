#include "experiments/report.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::experiments {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

RunResult Result(double win_oracle, double win_rm = 0.5, double sample_oracle = 0.25) {
  RunResult r;
  r.win_oracle = win_oracle;
  r.win_rm = win_rm;
  r.diff_oracle = -0.125;
  r.diff_rm = 1.5;
  r.sample_win_oracle = sample_oracle;
  r.sample_win_rm = 0.75;
  return r;
}

// The quick plan with a few finished runs, by hand.
ReportData Data() {
  ReportData d;
  d.preset = QuickPreset();
  d.plan = Plan(d.preset, "/r");
  d.runs["t1-tldr-dpo-bpo-s1"] = Result(0.4, 0.7, 0.3);
  d.runs["t1-tldr-dpo-bpo-s2"] = Result(0.6, 0.9, 0.5);
  d.runs["t1-tldr-dpo-onpolicy-s1"] = Result(0.2);
  d.runs["t1-tldr-dpo-offline-s1"] = Result(0.1);
  d.runs["t1-dialogue-ipo-offline-s1"] = Result(0.3);
  d.runs["f4-tldr-F4-s1"] = Result(0.8, 0.6, 0.7);
  d.runs["f6-tldr-bpo-m1-s1"] = Result(0.35);
  d.runs["mg-tldr-peft-s3"] = Result(0.45);
  d.runs["gold-tldr"] = Result(0.9, 0.95);
  d.other_evals["sft-tldr"] = Result(0.35, 0.65);
  d.other_evals["curve-t1-tldr-dpo-bpo-s1-step8"] = Result(0.5);
  d.steps["t1-tldr-dpo-bpo-s1"] = {{1, {{"loss", 0.69}, {"margin", 0.0}}},
                                   {2, {{"loss", 0.5}, {"margin", 0.1}}}};
  d.reward_models = {{"tldr", 649, 0.986, 72}};
  d.runs_commit = "abc";
  d.report_commit = "def";
  d.elapsed = "46 minutes";
  return d;
}

TEST(ReportTest, HeaderCountsFinishedRunsAndNamesTheSetup) {
  const std::string md = HeaderSection(Data()).markdown;
  EXPECT_THAT(md, HasSubstr("`bpo reproduce --quick` (runs started at commit `abc`; report written "
                            "at `def`) on a 2-core machine, 46 minutes from the first setup step "
                            "to the last evaluation (9 of 88 runs finished)"));
  EXPECT_THAT(md,
              HasSubstr("Reward model for `tldr`: 649 training pairs, held-out accuracy against "
                        "the oracle 0.986 on 72 pairs.\n"));
  EXPECT_THAT(md, HasSubstr("SFT policy (the starting point of every run), win rate: tldr 0.650 "
                            "(RM judge), 0.350 (oracle).\n"));
}

TEST(ReportTest, Table1IsMeanAndStdOverSeedsByMethodLossAndTask) {
  const std::string md = Table1Section(Data(), Metric::kGreedyOracle).markdown;
  EXPECT_THAT(md, HasSubstr("## Table 1: win rate against the references, greedy output, oracle "
                            "judge\n\n| method | tldr | dialogue |\n| --- | --- | --- |\n"
                            "| Offline DPO | 0.100 ± 0.000 | n/a |\n"
                            "| On-policy DPO | 0.200 ± 0.000 | n/a |\n"
                            "| **On-policy BPO (DPO)** | 0.500 ± 0.141 | n/a |\n"
                            "| Offline IPO | n/a | 0.300 ± 0.000 |\n"));
  EXPECT_THAT(Table1Section(Data(), Metric::kGreedyRm).markdown,
              HasSubstr("| **On-policy BPO (DPO)** | 0.800 ± 0.141 | n/a |\n"));
}

TEST(ReportTest, AggregateHasATableAndAnIntervalPlot) {
  const Section s = AggregateSection(Data(), Metric::kGreedyOracle);
  // Offline: tldr {0.1} and dialogue {0.3}: every resample is the same.
  EXPECT_THAT(s.markdown, HasSubstr("| Offline DAP | 0.200 [0.200, 0.200] | 0.200 [0.200, 0.200] | "
                                    "0.200 [0.200, 0.200] |\n"));
  EXPECT_THAT(s.markdown, HasSubstr("| On-policy BPO | 0.500 ["));
  EXPECT_THAT(s.markdown, HasSubstr("![aggregate](aggregate-greedy.svg)"));
  ASSERT_EQ(s.files.size(), 1u);
  EXPECT_EQ(s.files[0].name, "aggregate-greedy.svg");
  EXPECT_THAT(s.files[0].svg, HasSubstr("On-policy BPO"));
}

TEST(ReportTest, Fig4TakesFOneAndTFromTable1) {
  const Section s = Fig4Section(Data());
  EXPECT_THAT(s.markdown, HasSubstr("(tldr, BPO with the DPO loss, 256 pairs in every run)"));
  EXPECT_THAT(s.markdown,
              HasSubstr("| 1 | 32 | 0.100 ± 0.000 | 0.500 ± 0.000 | 0.250 ± 0.000 |\n"
                        "| 4 | 8 | 0.800 ± 0.000 | 0.600 ± 0.000 | 0.700 ± 0.000 |\n"
                        "| 32 | 1 | 0.500 ± 0.141 | 0.800 ± 0.141 | 0.400 ± 0.141 |\n"));
  ASSERT_EQ(s.files.size(), 1u);
  EXPECT_EQ(s.files[0].name, "fig4-win-rate-vs-F.svg");
}

TEST(ReportTest, VariantTablesPickRunsByTypedKeys) {
  const std::string fig5 = Fig5Section(Data()).markdown;
  EXPECT_THAT(fig5, HasSubstr("| On-policy DPO, SFT reference | 0.200 ± 0.000 | 0.500 ± 0.000 | "
                              "0.250 ± 0.000 | 1 |\n"));
  // No gold-reference run finished (the gold policy itself is not one).
  EXPECT_THAT(fig5, Not(HasSubstr("On-policy DPO, gold reference |")));
  EXPECT_THAT(fig5, HasSubstr("| On-policy BPO (DPO) | 0.500 ± 0.141 | 0.800 ± 0.141 | "
                              "0.400 ± 0.141 | 2 |\n"));
  const std::string fig6 = Fig6Section(Data()).markdown;
  EXPECT_THAT(fig6, HasSubstr("| BPO (DPO), one LoRA | 0.350 ± 0.000 |"));
  EXPECT_THAT(fig6, HasSubstr("| BPO (DPO), ensemble of 2 | 0.500 ± 0.141 |"));
  EXPECT_THAT(fig6, HasSubstr("| On-policy DPO, ensemble of 2 | 0.200 ± 0.000 |"));
  EXPECT_THAT(fig6, Not(HasSubstr("ensemble of 5")));
  EXPECT_THAT(Fig7Section(Data()).markdown, HasSubstr("| BPO (DPO), one LoRA | 0.350 ± 0.000 |"));
  EXPECT_THAT(MergeSection(Data()).markdown,
              HasSubstr("| peft_linear (PEFT's linear add_weighted_adapter) | 0.450 ± 0.000 |"));
  EXPECT_EQ(GoldReferenceSection(Data()).markdown,
            "The gold reference (BPO with the DPO loss, 64 steps, seed 100) wins 0.900 (oracle) "
            "and 0.950 (RM).\n\n");
  ReportData no_gold = Data();
  no_gold.runs.erase("gold-tldr");
  EXPECT_EQ(GoldReferenceSection(no_gold).markdown, "");
}

TEST(ReportTest, CurvesShowWhatWasEvaluated) {
  const Section win = WinRateCurveSection(Data());
  EXPECT_THAT(win.markdown, HasSubstr("| On-policy BPO (DPO) | greedy | 0 | 0.350 ± 0.000 |\n"
                                      "| On-policy BPO (DPO) | greedy | 8 | 0.500 ± 0.000 |\n"
                                      "| On-policy BPO (DPO) | greedy | 32 | 0.500 ± 0.141 |\n"));
  EXPECT_THAT(win.markdown, HasSubstr("| On-policy DPO | greedy | 0 | 0.350 ± 0.000 |\n"
                                      "| On-policy DPO | greedy | 32 | 0.200 ± 0.000 |\n"));
  ASSERT_EQ(win.files.size(), 1u);
  ReportData empty = Data();
  empty.runs.clear();
  empty.other_evals.clear();
  EXPECT_EQ(WinRateCurveSection(empty).markdown, "");
  const Section training = TrainingCurvesSection(Data());
  ASSERT_EQ(training.files.size(), 2u);  // loss and margin; no KL logged
  EXPECT_EQ(training.files[0].name, "curve-loss.svg");
  EXPECT_THAT(training.markdown, HasSubstr("![margin β·h](curve-margin.svg)\n"));
}

TEST(ReportTest, EveryRunListsThePlanAndResultsJsonTheFinishedRuns) {
  const std::string md = EveryRunSection(Data()).markdown;
  EXPECT_THAT(md, HasSubstr("| t1-tldr-dpo-bpo-s1 | On-policy BPO (DPO) | 1 | 0.400 | -0.125 | "
                            "0.700 | 1.500 | 0.300 |\n"));
  EXPECT_THAT(md, HasSubstr("| f4-tldr-F16-s1 | BPO (DPO), F = 16 | 1 | not run |"));
  const nlohmann::json j = ResultsJson(Data());
  EXPECT_EQ(j.size(), 9u);
  EXPECT_DOUBLE_EQ(j["f4-tldr-F4-s1"]["sample_win_rate_oracle"].get<double>(), 0.7);
  EXPECT_FALSE(j.contains("sft-tldr"));
}

TEST(ReportTest, WriteReportWritesTheFilesAndCopiesTheConfigs) {
  const std::string root =
      (fs::temp_directory_path() / absl::StrCat("bpo_report_", getpid())).string();
  fs::remove_all(root);
  ReportData d = Data();
  d.runs = {{"t1-tldr-dpo-bpo-s1", Result(0.4)}};
  fs::create_directories(root + "/configs");
  std::ofstream(ConfigPath(root, "t1-tldr-dpo-bpo-s1")) << "run_id: t1-tldr-dpo-bpo-s1\n";
  ASSERT_TRUE(WriteReport(d, root, root + "/report").ok());
  for (const char* f : {"report.md", "results.json", "aggregate-greedy.svg",
                        "fig4-win-rate-vs-F.svg", "configs/t1-tldr-dpo-bpo-s1.yaml"}) {
    EXPECT_TRUE(fs::exists(absl::StrCat(root, "/report/", f))) << f;
  }
  std::ifstream in(root + "/report/report.md");
  const std::string md((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(md, FullReport(d).markdown);
  // A finished run whose config is missing cannot be copied.
  d.runs["t1-tldr-dpo-bpo-s2"] = Result(0.5);
  const absl::Status missing = WriteReport(d, root, root + "/report");
  EXPECT_EQ(missing.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(missing.message(), HasSubstr("t1-tldr-dpo-bpo-s2.yaml"));
  fs::remove_all(root);
}

}  // namespace
}  // namespace bpo::experiments
