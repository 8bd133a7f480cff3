// bpo reproduce: the paper's comparisons at small scale, every run through
// the distributed system (bpo local), on the built-in synthetic tasks:
//   Table 1   offline DPO (F = 1, reference SFT), on-policy DPO (F = T,
//             reference SFT) and on-policy BPO (F = T, reference = behavior)
//             for the DPO, IPO and SLiC losses, both tasks, 3 seeds;
//   Fig. 4    BPO (DPO loss) with F from 1 to T at a fixed number of pairs;
//   Fig. 5    on-policy DPO with a static stronger ("gold") reference vs BPO;
//   Fig. 6/7  one LoRA vs an ensemble of 5, and an EMA reference;
//   merges    the ensemble merged as the exact mean of deltas vs PEFT's
//             linear combination.
// Per task the setup is shared: data, an SFT policy and a reward model
// trained from scratch (the RM is the annotator, as RM-deberta is in the
// paper; the hidden oracle judges too). Each run is evaluated on the test
// prompts against the references. Everything is resumable: a finished step
// (its output exists) is skipped, an interrupted bpo local resumes from its
// store and checkpoints. The report (Markdown + SVG) is written at the end.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/child.h"
#include "cli/command.h"
#include "eval/report.h"
#include "eval/stats.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, reproduce_dir, "runs/reproduce", "Where the runs go.");
ABSL_FLAG(std::string, report_dir, "", "Where the report goes (default: <reproduce_dir>/report).");
ABSL_FLAG(bool, quick, false, "The quick preset: under an hour on 2 CPU cores.");
ABSL_FLAG(bool, report_only, false, "Only write the report from the finished runs.");
ABSL_FLAG(std::string, only, "", "Only the experiments whose group is listed (table1,fig4,fig5,fig6,fig7,merge).");

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Preset {
  std::string name;
  std::vector<std::string> tasks;
  std::vector<int> seeds;
  int steps = 32;          // T
  int batch = 8;           // B
  int members = 2;         // LoRA ensemble size of the main runs
  int lora_rank = 8;
  double lr = 2e-3;
  int eval_samples = 8;  // sampled outputs per test prompt, besides the greedy one
  int max_new_tokens = 48;
  int sft_steps = 1500;
  int rm_steps = 300;
  int rm_pairs = 1000;
  int test_prompts = 100;
  std::vector<int> f_values;  // Fig. 4
};

Preset QuickPreset() {
  Preset p;
  p.name = "quick";
  p.tasks = {"tldr", "dialogue"};
  p.seeds = {1, 2, 3};
  p.f_values = {1, 2, 4, 8, 16, 32};
  return p;
}

Preset FullPreset() {
  Preset p = QuickPreset();
  p.name = "full";
  p.seeds = {1, 2, 3, 4, 5};
  p.steps = 128;
  p.batch = 16;
  p.members = 5;
  p.lora_rank = 16;
  p.lr = 5e-4;
  p.sft_steps = 4000;
  p.rm_steps = 800;
  p.rm_pairs = 3000;
  p.test_prompts = 200;
  p.f_values = {1, 2, 4, 8, 16, 32, 64, 128};
  return p;
}

struct Experiment {
  std::string id;      // directory name
  std::string group;   // table1, fig4, ...
  std::string task;
  std::string loss = "dpo";
  std::string method;  // the row label
  int seed = 1;
  int phases = 1;
  std::string reference = "behavior";  // behavior, sft, ema, static
  std::string static_adapter;
  double ema_rate = 0.1;
  int members = 2;
  std::string merge = "mean_delta";
  int steps = 32;
};

std::string MethodLabel(const std::string& kind, const std::string& loss) {
  std::string l = loss == "slic" ? "SLiC" : loss == "ipo" ? "IPO" : "DPO";
  if (kind == "offline") return "Offline " + l;
  if (kind == "onpolicy") return "On-policy " + l;
  return "On-policy BPO (" + l + ")";
}

std::vector<Experiment> Plan(const Preset& p, const std::string& root) {
  std::vector<Experiment> out;
  const int T = p.steps;
  auto base = [&](const std::string& group, const std::string& task, int seed) {
    Experiment e;
    e.group = group;
    e.task = task;
    e.seed = seed;
    e.members = p.members;
    e.steps = T;
    return e;
  };
  // Fig. 5's gold reference: a BPO policy trained twice as long.
  Experiment gold = base("fig5", "tldr", 100);
  gold.id = "gold-tldr";
  gold.method = "gold (BPO, 2T steps)";
  gold.phases = 2 * T;
  gold.steps = 2 * T;
  out.push_back(gold);
  // Seeds outermost: an interrupted run has whole comparisons for its
  // first seeds.
  for (int seed : p.seeds) {
    for (const std::string& task : p.tasks) {
      for (const std::string loss : {"dpo", "ipo", "slic"}) {
        for (const std::string kind : {"offline", "onpolicy", "bpo"}) {
          Experiment e = base("table1", task, seed);
          e.loss = loss;
          e.method = MethodLabel(kind, loss);
          e.phases = kind == "offline" ? 1 : T;
          e.reference = kind == "bpo" ? "behavior" : "sft";
          e.id = absl::StrCat("t1-", task, "-", loss, "-", kind, "-s", seed);
          out.push_back(e);
        }
      }
    }
  }
  for (int f : p.f_values) {
    if (f == 1 || f == T) continue;  // Table 1's offline and BPO runs
    for (int seed : p.seeds) {
      Experiment e = base("fig4", "tldr", seed);
      e.phases = f;
      e.method = absl::StrCat("BPO (DPO), F = ", f);
      e.id = absl::StrCat("f4-tldr-F", f, "-s", seed);
      out.push_back(e);
    }
  }
  for (int seed : p.seeds) {
    Experiment e = base("fig5", "tldr", seed);
    e.phases = T;
    e.reference = "static";
    e.static_adapter = absl::StrCat(root, "/runs/gold-tldr/adapter");
    e.method = "On-policy DPO, gold reference";
    e.id = absl::StrCat("f5-tldr-gold-s", seed);
    out.push_back(e);
  }
  // Fig. 6: one LoRA vs an ensemble of 5, for BPO and for on-policy DPO.
  for (const std::string kind : {"bpo", "onpolicy"}) {
    for (int members : {1, 5}) {
      if (members == p.members) continue;
      for (int seed : p.seeds) {
        Experiment e = base("fig6", "tldr", seed);
        e.phases = T;
        e.members = members;
        e.reference = kind == "bpo" ? "behavior" : "sft";
        e.method = absl::StrCat(kind == "bpo" ? "BPO (DPO)" : "On-policy DPO",
                                members == 1 ? ", one LoRA" : ", ensemble of 5");
        e.id = absl::StrCat("f6-tldr-", kind, "-m", members, "-s", seed);
        out.push_back(e);
      }
    }
  }
  // Fig. 7: without an ensemble (one LoRA), an EMA of the policy as the
  // reference instead of the behavior policy.
  for (int seed : p.seeds) {
    Experiment e = base("fig7", "tldr", seed);
    e.phases = T;
    e.members = 1;
    e.reference = "ema";
    e.method = "On-policy DPO, one LoRA, EMA reference";
    e.id = absl::StrCat("f7-tldr-ema-m1-s", seed);
    out.push_back(e);
  }
  for (int seed : p.seeds) {
    Experiment e = base("merge", "tldr", seed);
    e.phases = T;
    e.merge = "peft_linear";
    e.method = "BPO (DPO), peft_linear merge";
    e.id = absl::StrCat("mg-tldr-peft-s", seed);
    out.push_back(e);
  }
  return out;
}

std::string RunConfigYaml(const Preset& p, const Experiment& e, const std::string& root) {
  const std::string task_dir = absl::StrCat(root, "/setup/", e.task);
  std::ostringstream c;
  c << "# Written by bpo reproduce (" << p.name << " preset): " << e.method << ", seed " << e.seed
    << "\nrun_id: " << e.id << "\noutput_dir: " << root << "/runs\n"
    << "schedule: {total_steps: " << e.steps << ", phases: " << e.phases << ", batch_size: " << p.batch
    << "}\n"
    << "loss: {type: " << e.loss << ", beta: 0.1}\n"
    << "reference: {mode: " << e.reference << ", logprob_source: learner"
    << (e.reference == "ema" ? absl::StrCat(", ema_rate: ", e.ema_rate) : "")
    << (e.reference == "static" ? absl::StrCat(", static_adapter: ", e.static_adapter) : "") << "}\n"
    << "lora: {members: " << e.members << ", rank: " << p.lora_rank << ", alpha: " << 2 * p.lora_rank
    << ", dropout: 0.0, target_modules: [all-linear], merge_mode: " << e.merge << "}\n"
    << "optimizer: {learning_rate: " << p.lr << "}\n"
    << "sampling: {max_new_tokens: " << p.max_new_tokens << ", prompts_per_lease: 8}\n"
    << "model: {policy: " << task_dir << "/sft, reward_model: " << task_dir << "/rm}\n"
    << "data: {prompts: " << task_dir << "/data/prompts.jsonl, format: jsonl}\n"
    << "annotation: {kind: rm, ties: random, pairs_per_lease: 16}\n"
    << "coordinator: {actor_lease_seconds: 60, heartbeat_seconds: 1, fsync: false}\n"
    << "learner: {world_size: 2, checkpoint_every: 16}\n"
    << "launch: {actors: 2, annotators: 1}\nseeds: {global: " << e.seed << "}\n";
  return c.str();
}

bool Setup(const Preset& p, const std::string& task, const std::string& root) {
  TaskSetup setup;
  setup.task = task;
  setup.dir = absl::StrCat(root, "/setup/", task);
  setup.log_prefix = absl::StrCat(root, "/logs/", task, "-");
  setup.test_prompts = p.test_prompts;
  setup.sft_steps = p.sft_steps;
  setup.rm_steps = p.rm_steps;
  setup.rm_pairs = p.rm_pairs;
  setup.max_new_tokens = p.max_new_tokens;
  return PrepareTask(setup);
}

std::string EvalPath(const std::string& root, const std::string& id) {
  return absl::StrCat(root, "/eval/", id, ".json");
}

// `adapter`: a PEFT adapter directory, or a snapshot file (*.safetensors).
bool Evaluate(const Preset& p, const std::string& root, const std::string& id, const std::string& task,
              const std::string& adapter, const std::string& method, int seed) {
  const std::string dir = absl::StrCat(root, "/setup/", task);
  std::vector<std::string> args = {"eval", "--model=" + dir + "/sft", "--test_prompts=" + dir + "/data/test.jsonl",
                                   "--task=" + task, "--reward_model=" + dir + "/rm",
                                   absl::StrCat("--max_new_tokens=", p.max_new_tokens),
                                   "--json_out=" + EvalPath(root, id), "--method=" + method,
                                   absl::StrCat("--run_seed=", seed),
                                   absl::StrCat("--eval_samples=", p.eval_samples)};
  if (!adapter.empty()) {
    args.push_back((absl::EndsWith(adapter, ".safetensors") ? "--snapshot=" : "--adapter=") + adapter);
  }
  return RunBpoQuietly(args, absl::StrCat(root, "/logs/eval-", id, ".log"));
}

// Win rate during training: the snapshots on-policy runs published (F = T:
// one per step), evaluated at a few steps. Step 0 is the SFT policy and step
// T the final adapter, evaluated already.
std::vector<int> CurveSteps(const Preset& p) { return {p.steps / 4, p.steps / 2, 3 * p.steps / 4}; }

bool IsCurveRun(const Experiment& e) {
  return e.group == "table1" && e.task == "tldr" && e.loss == "dpo" && e.phases == e.steps;
}

std::string CurveId(const Experiment& e, int step) { return absl::StrCat("curve-", e.id, "-step", step); }

void EvaluateCurves(const Preset& p, const std::vector<Experiment>& plan, const std::string& root) {
  for (const Experiment& e : plan) {
    if (!IsCurveRun(e) || !fs::exists(EvalPath(root, e.id))) continue;
    for (int step : CurveSteps(p)) {
      const std::string id = CurveId(e, step);
      if (fs::exists(EvalPath(root, id))) continue;
      const std::string snap = absl::StrCat(root, "/runs/", e.id, "/snapshots/snapshot-", step, ".safetensors");
      std::cout << "win-rate curve: " << id << " ... " << std::flush;
      std::cout << (Evaluate(p, root, id, e.task, snap, e.method, e.seed) ? "done\n" : "FAILED\n");
    }
  }
}

// ----- the report -----

struct Result {
  double win_rm = 0, win_oracle = 0, diff_rm = 0, diff_oracle = 0;
  // The same over temperature-1 samples (8 per prompt).
  double sample_win_rm = 0, sample_win_oracle = 0;
};

// Which number of a Result a table or plot shows.
enum class Metric { kGreedyOracle, kGreedyRm, kSampleOracle, kSampleRm };

double Get(const Result& r, Metric m) {
  switch (m) {
    case Metric::kGreedyOracle: return r.win_oracle;
    case Metric::kGreedyRm: return r.win_rm;
    case Metric::kSampleOracle: return r.sample_win_oracle;
    case Metric::kSampleRm: return r.sample_win_rm;
  }
  return 0;
}

// For legends and titles.
const char* ShortMetricName(Metric m) {
  switch (m) {
    case Metric::kGreedyOracle: return "greedy, oracle";
    case Metric::kGreedyRm: return "greedy, RM";
    case Metric::kSampleOracle: return "samples, oracle";
    case Metric::kSampleRm: return "samples, RM";
  }
  return "";
}

const char* MetricName(Metric m) {
  switch (m) {
    case Metric::kGreedyOracle: return "greedy output, oracle judge";
    case Metric::kGreedyRm: return "greedy output, RM judge";
    case Metric::kSampleOracle: return "temperature-1 samples, oracle judge";
    case Metric::kSampleRm: return "temperature-1 samples, RM judge";
  }
  return "";
}

std::optional<Result> ReadEval(const std::string& path, const std::string& task, const std::string& root) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  const std::string rm = absl::StrCat("rm:", root, "/setup/", task, "/rm");
  const std::string oracle = "oracle:" + task;
  if (!j["judges"].contains(rm) || !j["judges"].contains(oracle)) return std::nullopt;
  Result r;
  r.win_rm = j["judges"][rm]["win_rate"];
  r.diff_rm = j["judges"][rm]["mean_reward_diff"];
  r.win_oracle = j["judges"][oracle]["win_rate"];
  r.diff_oracle = j["judges"][oracle]["mean_reward_diff"];
  r.sample_win_rm = j["judges"][rm].value("sample_win_rate", std::nan(""));
  r.sample_win_oracle = j["judges"][oracle].value("sample_win_rate", std::nan(""));
  return r;
}

// Per-step learner metrics of one run (rank 0's steps.jsonl).
std::vector<json> ReadSteps(const std::string& run_dir) {
  std::vector<json> out;
  std::ifstream in(run_dir + "/steps.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

double StdDev(const std::vector<double>& x) {
  if (x.size() < 2) return 0;
  const double m = eval::Mean(x);
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return std::sqrt(s / (x.size() - 1));
}

std::string MeanStd(const std::vector<double>& x) {
  if (x.empty()) return "n/a";
  return absl::StrFormat("%.3f ± %.3f", eval::Mean(x), StdDev(x));
}

std::string GitCommit() {
  std::string out;
  if (FILE* f = popen("git rev-parse HEAD 2>/dev/null && git status --porcelain --untracked-files=no 2>/dev/null | head -1", "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, f)) out += buf;
    pclose(f);
  }
  const size_t nl = out.find('\n');
  if (nl == std::string::npos) return "unknown (not a git checkout)";
  std::string commit = out.substr(0, nl);
  if (out.size() > nl + 1) commit += " (with uncommitted changes)";
  return commit;
}

// The commit the runs started at, recorded once in <root>/provenance.txt.
std::string ReadProvenance(const std::string& root) {
  std::ifstream in(root + "/provenance.txt");
  std::string line;
  std::getline(in, line);
  return line.empty() ? "unknown" : line;
}

// Minutes from <root>/provenance.txt (written when the first invocation
// started) to the newest evaluation result, over all invocations.
std::string ElapsedMinutes(const std::string& root) {
  std::error_code ec;
  const auto start = fs::last_write_time(root + "/provenance.txt", ec);
  if (ec) return "time unknown";
  auto newest = start;
  for (const auto& entry : fs::directory_iterator(root + "/eval", ec)) {
    newest = std::max(newest, entry.last_write_time(ec));
  }
  const double minutes = std::chrono::duration<double>(newest - start).count() / 60;
  return absl::StrFormat("%.0f minutes", minutes);
}

int WriteReport(const Preset& p, const std::vector<Experiment>& plan, const std::string& root,
                const std::string& report_dir) {
  fs::create_directories(report_dir + "/configs");
  std::map<std::string, Result> results;
  for (const Experiment& e : plan) {
    if (auto r = ReadEval(EvalPath(root, e.id), e.task, root)) results[e.id] = *r;
  }
  std::map<std::string, Result> sft_by_task;
  for (const std::string& task : p.tasks) {
    if (auto r = ReadEval(EvalPath(root, "sft-" + task), task, root)) sft_by_task[task] = *r;
  }
  // Collect win rates of a set of runs: by judge.
  auto wins = [&](const std::function<bool(const Experiment&)>& pick, Metric metric) {
    std::vector<double> v;
    for (const Experiment& e : plan) {
      if (!pick(e) || !results.count(e.id)) continue;
      v.push_back(Get(results[e.id], metric));
    }
    return v;
  };
  std::ostringstream md;
  md << "# bpo reproduce: the paper's comparisons at small scale (" << p.name << " preset)\n\n"
     << "Every number below was measured by `bpo reproduce" << (p.name == "quick" ? " --quick" : "")
     << "` (runs started at commit `" << ReadProvenance(root) << "`; report written at `" << GitCommit()
     << "`) on a 2-core machine, " << ElapsedMinutes(root)
     << " from the first setup step to the last evaluation (" << results.size() << " of " << plan.size()
     << " runs finished). The numbers are what they are: where BPO does not beat a baseline at "
     << "this scale, the tables say so.\n\n"
     << "## Setup\n\n"
     << "- Tasks: the built-in synthetic `tldr` (summarisation, TL;DR format) and `dialogue` "
     << "(arithmetic questions in the helpfulness format); see docs/experiments.md.\n"
     << "- Per task: a 2-layer 128-wide Llama and a 512-piece tokenizer trained from scratch ("
     << p.sft_steps << " SFT steps); a 2-layer 128-wide DeBERTa-v3-style reward model trained with "
     << "Bradley–Terry (" << p.rm_steps << " steps) on pairs sampled from the SFT policy on the SFT "
     << "prompts (up to " << p.rm_pairs << " samplings) and labelled by the task's hidden oracle, ties "
     << "dropped. The RM is the annotator of every run.\n"
     << "- Every run goes through the distributed system (`bpo local`: coordinator, 2 actors, the RM "
     << "annotator, 2 learner ranks): T = " << p.steps << " steps of B = " << p.batch << " pairs, "
     << "loss β = 0.1, LoRA rank " << p.lora_rank << " on all linear layers, ensemble of "
     << p.members << " members (merged as the exact mean of deltas), AdamW lr " << p.lr
     << ", responses of at most " << p.max_new_tokens << " tokens, seeds "
     << absl::StrJoin(p.seeds, ", ") << ".\n"
     << "- Evaluation: greedy outputs on " << p.test_prompts << " test prompts; win rate = share of "
     << "outputs scored strictly above the prompt's human-like reference. Two judges: the trained RM "
     << "(what the annotator rewards) and the task's hidden oracle (what the task wants). A policy "
     << "that gains on the RM but not on the oracle is over-optimising the RM.\n"
     << "- Table cells: mean ± standard deviation over seeds.\n\n";
  for (const auto& task : p.tasks) {
    std::ifstream in(absl::StrCat(root, "/setup/", task, "/rm/train_rm.json"));
    const json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("heldout_accuracy")) continue;
    md << absl::StrFormat("Reward model for `%s`: %d training pairs, held-out accuracy against the oracle "
                          "%.3f on %d pairs.\n",
                          task, j.value("train_pairs", 0), j["heldout_accuracy"].get<double>(),
                          j.value("heldout_pairs", 0));
  }
  md << "\n";
  if (!sft_by_task.empty()) {
    md << "SFT policy (the starting point of every run), win rate: ";
    std::vector<std::string> parts;
    for (const auto& [task, r] : sft_by_task) {
      parts.push_back(absl::StrFormat("%s %.3f (RM judge), %.3f (oracle)", task, r.win_rm, r.win_oracle));
    }
    md << absl::StrJoin(parts, "; ") << ".\n\n";
  }
  // Table 1.
  for (const Metric metric : {Metric::kGreedyOracle, Metric::kGreedyRm, Metric::kSampleOracle}) {
    md << "## Table 1: win rate against the references, " << MetricName(metric) << "\n\n";
    std::vector<std::string> header = {"method"};
    for (const auto& t : p.tasks) header.push_back(t);
    std::vector<std::vector<std::string>> rows;
    for (const std::string loss : {"dpo", "ipo", "slic"}) {
      for (const std::string kind : {"offline", "onpolicy", "bpo"}) {
        const std::string label = MethodLabel(kind, loss);
        std::vector<std::string> row = {kind == "bpo" ? "**" + label + "**" : label};
        for (const auto& t : p.tasks) {
          row.push_back(MeanStd(wins([&](const Experiment& e) {
            return e.group == "table1" && e.task == t && e.method == label;
          }, metric)));
        }
        rows.push_back(row);
      }
    }
    md << eval::MarkdownTable(header, rows) << "\n";
  }
  // Aggregate (Fig. 3 style) over tasks x losses x seeds, oracle judge.
  for (const Metric metric : {Metric::kGreedyOracle, Metric::kSampleOracle}) {
    const bool greedy = metric == Metric::kGreedyOracle;
    eval::IntervalPlot ip;
    ip.title = absl::StrCat("Win rate (", ShortMetricName(metric), "), tasks x losses x seeds, 95% CIs");
    ip.x_label = "win rate against the references";
    ip.panels = {"Median", "IQM", "Mean"};
    ip.rows_per_panel.resize(3);
    std::vector<std::vector<std::string>> rows;
    const std::vector<eval::Aggregate> aggs = {[](const std::vector<double>& x) { return eval::Median(x); },
                                               [](const std::vector<double>& x) { return eval::Iqm(x); },
                                               eval::Mean};
    for (const std::string kind : {"offline", "onpolicy", "bpo"}) {
      const std::string name = kind == "offline" ? "Offline DAP" : kind == "onpolicy" ? "On-policy DAP" : "On-policy BPO";
      eval::ScoreMatrix m;
      for (const auto& t : p.tasks) {
        std::vector<double> v = wins([&](const Experiment& e) {
          return e.group == "table1" && e.task == t &&
                 (e.method == MethodLabel(kind, "dpo") || e.method == MethodLabel(kind, "ipo") ||
                  e.method == MethodLabel(kind, "slic"));
        }, metric);
        if (!v.empty()) m.push_back(v);
      }
      if (m.empty()) continue;
      std::vector<std::string> row = {name};
      for (size_t a = 0; a < 3; ++a) {
        const eval::Interval ci = eval::StratifiedBootstrap(m, aggs[a], 2000, 0.95, 0);
        ip.rows_per_panel[a].push_back({name, ci.estimate, ci.lower, ci.upper});
        row.push_back(eval::FormatEstimate(ci.estimate, ci.lower, ci.upper));
      }
      rows.push_back(row);
    }
    md << "## Aggregate over tasks, losses and seeds (as the paper's Fig. 3): " << MetricName(metric) << "\n\n"
       << eval::MarkdownTable({"method", "median [95% CI]", "IQM [95% CI]", "mean [95% CI]"}, rows) << "\n";
    if (!ip.rows_per_panel[0].empty()) {
      if (auto svg = eval::RenderIntervalPlotSvg(ip); svg.ok()) {
        const std::string file = greedy ? "aggregate-greedy.svg" : "aggregate-samples.svg";
        std::ofstream(report_dir + "/" + file) << *svg;
        md << "![aggregate](" << file << ")\n\n";
      }
    }
  }
  // Fig. 4: win rate vs F.
  {
    eval::LinePlot lp;
    lp.title = "BPO (DPO) on tldr: win rate vs F";
    lp.x_label = "F (annotation phases)";
    lp.y_label = "win rate";
    lp.log2_x = true;
    lp.y_min = 0;
    lp.y_max = 1;
    std::vector<std::vector<std::string>> rows;
    for (const Metric metric : {Metric::kGreedyOracle, Metric::kGreedyRm, Metric::kSampleOracle}) {
      const bool first = metric == Metric::kGreedyOracle;
      eval::Series s;
      s.name = ShortMetricName(metric);
      for (int f : p.f_values) {
        std::vector<double> v = wins([&](const Experiment& e) {
          if (e.task != "tldr" || e.loss != "dpo") return false;
          if (e.group == "fig4") return e.phases == f;
          return e.group == "table1" && ((f == 1 && e.phases == 1) || (f == p.steps && e.method == MethodLabel("bpo", "dpo")));
        }, metric);
        if (v.empty()) continue;
        const double m = eval::Mean(v), sd = StdDev(v);
        s.x.push_back(f);
        s.y.push_back(m);
        s.y_low.push_back(m - sd);
        s.y_high.push_back(m + sd);
        if (first) rows.push_back({absl::StrCat(f), absl::StrCat(p.steps / f), MeanStd(v)});
        else if (rows.size() >= s.x.size()) rows[s.x.size() - 1].push_back(MeanStd(v));
      }
      lp.series.push_back(s);
    }
    md << "## Fig. 4: annotation frequency F (tldr, BPO with the DPO loss, " << p.steps * p.batch
       << " pairs in every run)\n\nF = 1 is offline DPO (Table 1's runs); F = T is on-policy BPO.\n\n"
       << eval::MarkdownTable({"F", "K = T/F steps per phase", "win rate (greedy, oracle)", "win rate (greedy, RM)",
                               "win rate (samples, oracle)"},
                              rows)
       << "\n";
    if (auto svg = eval::RenderLinePlotSvg(lp); svg.ok()) {
      std::ofstream(report_dir + "/fig4-win-rate-vs-F.svg") << *svg;
      md << "![win rate vs F](fig4-win-rate-vs-F.svg)\n\nShaded: ± one standard deviation over seeds.\n\n";
    }
  }
  // Figs. 5-7 and merges: one table of tldr DPO-loss variants.
  {
    struct Variant {
      std::string label;
      std::function<bool(const Experiment&)> pick;
    };
    const std::string bpo = MethodLabel("bpo", "dpo"), onp = MethodLabel("onpolicy", "dpo");
    auto t1 = [&](const std::string& m) {
      return [=](const Experiment& e) { return e.group == "table1" && e.task == "tldr" && e.method == m; };
    };
    auto by = [&](const std::string& group, const std::string& m) {
      return [=](const Experiment& e) { return e.group == group && e.method == m; };
    };
    const std::vector<std::pair<std::string, std::vector<Variant>>> figs = {
        {"Fig. 5: a stronger static reference (gold) for on-policy DPO",
         {{"On-policy DPO, SFT reference", t1(onp)},
          {"On-policy DPO, gold reference", by("fig5", "On-policy DPO, gold reference")},
          {"On-policy BPO (DPO)", t1(bpo)}}},
        {"Fig. 6: one LoRA vs an ensemble",
         {{"BPO (DPO), one LoRA", by("fig6", "BPO (DPO), one LoRA")},
          {absl::StrCat("BPO (DPO), ensemble of ", p.members), t1(bpo)},
          {"BPO (DPO), ensemble of 5", by("fig6", "BPO (DPO), ensemble of 5")},
          {"On-policy DPO, one LoRA", by("fig6", "On-policy DPO, one LoRA")},
          {absl::StrCat("On-policy DPO, ensemble of ", p.members), t1(onp)},
          {"On-policy DPO, ensemble of 5", by("fig6", "On-policy DPO, ensemble of 5")}}},
        {"Fig. 7: one LoRA with an EMA reference (rate 0.1) vs the behavior reference",
         {{"On-policy DPO, one LoRA, EMA reference", by("fig7", "On-policy DPO, one LoRA, EMA reference")},
          {"BPO (DPO), one LoRA", by("fig6", "BPO (DPO), one LoRA")},
          {absl::StrCat("BPO (DPO), ensemble of ", p.members), t1(bpo)}}},
        {"LoRA merge modes of the ensemble",
         {{"mean_delta (exact mean of deltas)", t1(bpo)},
          {"peft_linear (PEFT's linear add_weighted_adapter)", by("merge", "BPO (DPO), peft_linear merge")}}}};
    for (const auto& [title, variants] : figs) {
      std::vector<std::vector<std::string>> rows;
      for (const Variant& v : variants) {
        const auto o = wins(v.pick, Metric::kGreedyOracle), r = wins(v.pick, Metric::kGreedyRm),
                   so = wins(v.pick, Metric::kSampleOracle);
        if (o.empty()) continue;
        rows.push_back({v.label, MeanStd(o), MeanStd(r), MeanStd(so), absl::StrCat(o.size())});
      }
      md << "## " << title << " (tldr)\n\n"
         << eval::MarkdownTable({"run", "win rate (greedy, oracle)", "win rate (greedy, RM)",
                                 "win rate (samples, oracle)", "seeds"},
                                rows)
         << "\n";
    }
    if (results.count("gold-tldr")) {
      md << absl::StrFormat("The gold reference (BPO with the DPO loss, %d steps, seed 100) wins %.3f "
                            "(oracle) and %.3f (RM).\n\n",
                            2 * p.steps, results["gold-tldr"].win_oracle, results["gold-tldr"].win_rm);
    }
  }
  // Win rate during training (on-policy runs: a snapshot per step).
  {
    eval::LinePlot lp;
    lp.title = "tldr, DPO: win rate during training (oracle)";
    lp.x_label = "learner step";
    lp.y_label = "win rate";
    lp.y_min = 0;
    lp.y_max = 1;
    std::vector<std::vector<std::string>> rows;
    for (const std::string kind : {"onpolicy", "bpo"}) {
      const std::string method = MethodLabel(kind, "dpo");
      for (const Metric metric : {Metric::kGreedyOracle, Metric::kSampleOracle}) {
        eval::Series s;
        s.name = absl::StrCat(kind == "bpo" ? "BPO" : "on-policy DPO",
                              metric == Metric::kGreedyOracle ? ", greedy" : ", samples");
        std::vector<int> steps = {0};
        for (int st : CurveSteps(p)) steps.push_back(st);
        steps.push_back(p.steps);
        for (int step : steps) {
          std::vector<double> v;
          for (const Experiment& e : plan) {
            if (!IsCurveRun(e) || e.method != method) continue;
            const std::string id = step == 0 ? "sft-tldr" : step == p.steps ? e.id : CurveId(e, step);
            if (auto r = ReadEval(EvalPath(root, id), "tldr", root)) v.push_back(Get(*r, metric));
          }
          if (v.empty()) continue;
          s.x.push_back(step);
          s.y.push_back(eval::Mean(v));
          rows.push_back({method, metric == Metric::kGreedyOracle ? "greedy" : "samples", absl::StrCat(step),
                          MeanStd(v)});
        }
        if (!s.x.empty()) lp.series.push_back(s);
      }
    }
    if (!lp.series.empty()) {
      md << "## Win rate during training (tldr, DPO loss, oracle judge)\n\nEvaluated on the snapshots the "
         << "on-policy runs published (one per step); step 0 is the SFT policy.\n\n";
      if (auto svg = eval::RenderLinePlotSvg(lp); svg.ok()) {
        std::ofstream(report_dir + "/curve-win-rate.svg") << *svg;
        md << "![win rate during training](curve-win-rate.svg)\n\n";
      }
      md << eval::MarkdownTable({"method", "outputs", "step", "win rate (oracle)"}, rows) << "\n";
    }
  }
  // Training curves: tldr, DPO loss, the three Table 1 methods, mean over seeds.
  {
    md << "## Training curves (tldr, DPO loss, mean over seeds)\n\n";
    const std::vector<std::pair<std::string, std::string>> metrics = {
        {"loss", "loss"}, {"margin", "margin β·h"}, {"kl_reference", "KL to the reference"}, {"kl_sft", "KL to SFT"}};
    // Each run's steps.jsonl, read once for all four plots.
    std::map<std::string, std::vector<json>> steps;
    for (const Experiment& e : plan) {
      if (e.group == "table1" && e.task == "tldr" && e.loss == "dpo") {
        steps[e.id] = ReadSteps(absl::StrCat(root, "/runs/", e.id));
      }
    }
    for (const auto& [key, label] : metrics) {
      eval::LinePlot lp;
      lp.title = absl::StrCat("tldr, DPO: ", label);
      lp.x_label = "learner step";
      lp.y_label = label;
      lp.markers = false;
      for (const std::string kind : {"offline", "onpolicy", "bpo"}) {
        eval::Series s;
        s.name = MethodLabel(kind, "dpo");
        std::map<int, std::vector<double>> by_step;
        for (const Experiment& e : plan) {
          if (e.group != "table1" || e.task != "tldr" || e.method != s.name) continue;
          for (const json& j : steps[e.id]) {
            if (j.contains(key) && j[key].is_number()) by_step[j["step"].get<int>()].push_back(j[key].get<double>());
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
        std::ofstream(report_dir + "/" + file) << *svg;
        md << "![" << label << "](" << file << ")\n";
      }
    }
    md << "\nKL values are the learner's estimate on each batch: mean over responses of log π_ref(y) − "
       << "log π_θ(y) (to the run's reference, and to the SFT policy).\n\n";
  }
  // Per-run numbers and the configs.
  {
    std::vector<std::vector<std::string>> rows;
    for (const Experiment& e : plan) {
      if (!results.count(e.id)) {
        rows.push_back({e.id, e.method, absl::StrCat(e.seed), "not run", "", "", "", ""});
        continue;
      }
      const Result& r = results[e.id];
      rows.push_back({e.id, e.method, absl::StrCat(e.seed), absl::StrFormat("%.3f", r.win_oracle),
                      absl::StrFormat("%.3f", r.diff_oracle), absl::StrFormat("%.3f", r.win_rm),
                      absl::StrFormat("%.3f", r.diff_rm), absl::StrFormat("%.3f", r.sample_win_oracle)});
      fs::copy_file(absl::StrCat(root, "/configs/", e.id, ".yaml"),
                    absl::StrCat(report_dir, "/configs/", e.id, ".yaml"), fs::copy_options::overwrite_existing);
    }
    md << "## Every run\n\nConfigs: `configs/<run>.yaml` beside this report (the exact files `bpo local` ran; "
       << "paths are those of the machine that ran them).\n\n"
       << eval::MarkdownTable({"run", "method", "seed", "win (oracle)", "reward diff (oracle)", "win (RM)",
                               "reward diff (RM)", "win (samples, oracle)"},
                              rows);
  }
  std::ofstream(report_dir + "/report.md") << md.str();
  json all = json::object();
  for (const auto& [id, r] : results) {
    all[id] = {{"win_rate_oracle", r.win_oracle}, {"win_rate_rm", r.win_rm}, {"reward_diff_oracle", r.diff_oracle},
               {"reward_diff_rm", r.diff_rm}, {"sample_win_rate_oracle", r.sample_win_oracle},
               {"sample_win_rate_rm", r.sample_win_rm}};
  }
  std::ofstream(report_dir + "/results.json") << all.dump(1) << "\n";
  std::cout << "report: " << report_dir << "/report.md\n";
  return kExitOk;
}

int RunReproduce(const std::vector<std::string>&) {
  const Preset p = absl::GetFlag(FLAGS_quick) ? QuickPreset() : FullPreset();
  const std::string root = fs::absolute(absl::GetFlag(FLAGS_reproduce_dir)).lexically_normal().string();
  std::string report_dir = absl::GetFlag(FLAGS_report_dir);
  report_dir = report_dir.empty() ? root + "/report" : fs::absolute(report_dir).lexically_normal().string();
  for (const char* d : {"/logs", "/configs", "/eval", "/runs"}) fs::create_directories(root + d);
  std::vector<Experiment> plan = Plan(p, root);
  const std::string only = absl::GetFlag(FLAGS_only);
  if (!only.empty()) {
    std::set<std::string> groups;
    for (absl::string_view g : absl::StrSplit(only, ',')) groups.insert(std::string(g));
    for (const std::string& g : groups) {
      static const std::set<std::string> kKnown = {"table1", "fig4", "fig5", "fig6", "fig7", "merge"};
      if (!kKnown.count(g)) {
        std::cerr << "bpo reproduce: --only: unknown group '" << g << "' (table1, fig4, fig5, fig6, fig7, merge)\n";
        return kExitUsage;
      }
    }
    plan.erase(std::remove_if(plan.begin(), plan.end(), [&](const Experiment& e) { return !groups.count(e.group); }),
               plan.end());
  }
  if (!absl::GetFlag(FLAGS_report_only)) {
    if (!fs::exists(root + "/provenance.txt")) std::ofstream(root + "/provenance.txt") << GitCommit() << "\n";
    std::cout << "bpo reproduce (" << p.name << " preset) in " << root << ": " << plan.size()
              << " runs through bpo local, T = " << p.steps << ", B = " << p.batch << ", seeds "
              << absl::StrJoin(p.seeds, ",") << "\n";
    std::set<std::string> tasks;
    for (const Experiment& e : plan) tasks.insert(e.task);
    for (const std::string& task : tasks) {
      if (!Setup(p, task, root)) return kExitFailure;
      const std::string sft_eval = EvalPath(root, "sft-" + task);
      if (!fs::exists(sft_eval) && !Evaluate(p, root, "sft-" + task, task, "", "SFT", 0)) {
        std::cerr << "bpo reproduce: evaluating the SFT policy failed; log: " << root << "/logs/eval-sft-" << task << ".log\n";
        return kExitFailure;
      }
    }
    int done = 0, failed = 0;
    const absl::Time runs_start = absl::Now();
    int ran = 0;
    for (const Experiment& e : plan) {
      ++done;
      if (fs::exists(EvalPath(root, e.id))) continue;
      const std::string config = absl::StrCat(root, "/configs/", e.id, ".yaml");
      std::ofstream(config) << RunConfigYaml(p, e, root);
      const absl::Time r0 = absl::Now();
      std::cout << absl::StrFormat("[%d/%d] %-28s %-34s seed %d ... ", done, plan.size(), e.id, e.method, e.seed)
                << std::flush;
      const std::string run_dir = absl::StrCat(root, "/runs/", e.id);
      const bool trained = fs::exists(run_dir + "/adapter/adapter_model.safetensors") ||
                           RunBpoQuietly({"local", "--config=" + config}, absl::StrCat(root, "/logs/local-", e.id, ".log"));
      if (!trained || !Evaluate(p, root, e.id, e.task, run_dir + "/adapter", e.method, e.seed)) {
        ++failed;
        std::cout << "FAILED (logs: " << root << "/logs/*-" << e.id << ".log)\n";
        continue;
      }
      ++ran;
      const double per_run = absl::ToDoubleSeconds(absl::Now() - runs_start) / ran;
      int left = 0;
      for (const Experiment& x : plan) left += fs::exists(EvalPath(root, x.id)) ? 0 : 1;
      auto r = ReadEval(EvalPath(root, e.id), e.task, root);
      std::cout << absl::StrFormat("%3.0f s  win %.2f (oracle) %.2f (RM) %.2f (samples, oracle)  ETA %.0f min\n",
                                   absl::ToDoubleSeconds(absl::Now() - r0), r ? r->win_oracle : 0.0,
                                   r ? r->win_rm : 0.0, r ? r->sample_win_oracle : 0.0, per_run * left / 60)
                << std::flush;
    }
    if (failed > 0) std::cout << failed << " run(s) failed; rerun to retry them.\n";
    EvaluateCurves(p, plan, root);
  }
  return WriteReport(p, plan, root, report_dir);
}

}  // namespace

const Command& ReproduceCommand() {
  static const Command kCommand{
      "reproduce",
      "The paper's comparisons (Table 1, Figs. 4-7) at small scale through bpo local; writes a report.",
      "bpo reproduce [--quick] [--reproduce_dir DIR] [--report_dir DIR] [--only table1,fig4,...]",
      __FILE__, 0, 0, &RunReproduce};
  return kCommand;
}

}  // namespace bpo::cli
