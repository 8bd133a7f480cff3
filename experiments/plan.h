// What `bpo reproduce` runs: the presets (quick, full), the plan of
// experiments (the paper's Table 1 and Figs. 4-7 plus the LoRA merge modes)
// with typed keys, each run's `bpo local` config, and where its files go
// under the reproduce directory:
//   <root>/setup/<task>/   data/, sft/, rm/ shared by the task's runs
//   <root>/configs/<id>.yaml, <root>/runs/<id>/, <root>/eval/<id>.json,
//   <root>/logs/
// All functions are pure.
#ifndef BPO_EXPERIMENTS_PLAN_H_
#define BPO_EXPERIMENTS_PLAN_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bpo::experiments {

struct Preset {
  std::string name;  // "quick", "full"
  std::vector<std::string> tasks;
  std::vector<int> seeds;
  int steps = 32;   // T
  int batch = 8;    // B
  int members = 2;  // LoRA ensemble size of the main runs
  int lora_rank = 8;
  double lr = 2e-3;
  int eval_samples = 8;  // sampled outputs per test prompt, besides the greedy one
  int max_new_tokens = 48;
  int sft_steps = 1500;
  int rm_steps = 300;
  int rm_pairs = 1000;
  int test_prompts = 100;
  std::vector<int> f_values;  // Fig. 4's annotation frequencies
};

Preset QuickPreset();  // under an hour on 2 CPU cores
Preset FullPreset();   // for a bigger machine

// The report's sections; `--only` selects by name.
enum class Group { kTable1, kFig4, kFig5, kFig6, kFig7, kMerge };
enum class Loss { kDpo, kIpo, kSlic };
// Table 1's three methods, and the gold policy Fig. 5 uses as a reference.
enum class Method {
  kOffline,   // F = 1, reference SFT
  kOnPolicy,  // F = T, reference SFT (or the reference the variant names)
  kBpo,       // reference = behavior
  kGold,      // BPO trained 2T steps: Fig. 5's static reference
};
enum class Reference { kBehavior, kSft, kEma, kStatic };
enum class Merge { kMeanDelta, kPeftLinear };

inline constexpr Group kAllGroups[] = {Group::kTable1, Group::kFig4, Group::kFig5,
                                       Group::kFig6,   Group::kFig7, Group::kMerge};
inline constexpr Loss kAllLosses[] = {Loss::kDpo, Loss::kIpo, Loss::kSlic};
inline constexpr Method kTable1Methods[] = {Method::kOffline, Method::kOnPolicy, Method::kBpo};

const char* GroupName(Group g);          // "table1", "fig4", ...
const char* LossName(Loss l);            // "dpo", "ipo", "slic" (the config's loss.type)
const char* LossLabel(Loss l);           // "DPO", "IPO", "SLiC"
const char* ReferenceName(Reference r);  // the config's reference.mode
const char* MergeName(Merge m);          // the config's lora.merge_mode

// The groups named in a comma-separated list ("table1,fig4"); INVALID_ARGUMENT
// "unknown group 'x' (table1, fig4, fig5, fig6, fig7, merge)".
absl::StatusOr<std::set<Group>> ParseGroups(absl::string_view list);

struct Experiment {
  std::string id;  // the run's directory and file name
  Group group = Group::kTable1;
  std::string task;
  Loss loss = Loss::kDpo;
  Method method = Method::kBpo;
  int seed = 1;
  int phases = 1;  // F
  Reference reference = Reference::kBehavior;
  std::string static_adapter;  // with Reference::kStatic
  double ema_rate = 0.1;       // with Reference::kEma
  int members = 2;
  Merge merge = Merge::kMeanDelta;
  int steps = 32;  // T
};

// The row label of Table 1's methods: "Offline DPO", "On-policy IPO",
// "On-policy BPO (SLiC)".
std::string MethodLabel(Method method, Loss loss);
// The label of a run in progress lines, configs, `bpo eval --method` and the
// report ("BPO (DPO), F = 4", "On-policy DPO, gold reference", ...).
std::string Label(const Experiment& e);

// Every run of preset `p`, the gold policy first, then seeds outermost (an
// interrupted reproduction holds whole comparisons for its first seeds).
// `root` is the reproduce directory (Fig. 5 reads the gold adapter there).
std::vector<Experiment> Plan(const Preset& p, const std::string& root);

// `plan` without the runs whose group is not in `groups`.
std::vector<Experiment> FilterGroups(std::vector<Experiment> plan, const std::set<Group>& groups);

// The run's `bpo local` config (YAML).
std::string RunConfigYaml(const Preset& p, const Experiment& e, const std::string& root);

// Where things are under the reproduce directory.
std::string TaskDir(const std::string& root, const std::string& task);
std::string EvalPath(const std::string& root, const std::string& id);
std::string RunDir(const std::string& root, const std::string& id);
std::string ConfigPath(const std::string& root, const std::string& id);
// The judge names `bpo eval` gives the task's RM and oracle.
std::string RmJudge(const std::string& root, const std::string& task);
std::string OracleJudge(const std::string& task);
// The id of the SFT policy's evaluation on `task`.
std::string SftEvalId(const std::string& task);

// Win rate during training: on-policy Table 1 runs on tldr with the DPO loss
// (F = T: a snapshot per step) are also evaluated at these steps (T/4, T/2,
// 3T/4); step 0 is the SFT policy and step T the final adapter.
std::vector<int> CurveSteps(const Preset& p);
bool IsCurveRun(const Experiment& e);
std::string CurveId(const Experiment& e, int step);

}  // namespace bpo::experiments

#endif  // BPO_EXPERIMENTS_PLAN_H_
