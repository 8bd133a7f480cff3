#include "experiments/plan.h"

#include <algorithm>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bpo::experiments {

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

const char* GroupName(Group g) {
  switch (g) {
    case Group::kTable1:
      return "table1";
    case Group::kFig4:
      return "fig4";
    case Group::kFig5:
      return "fig5";
    case Group::kFig6:
      return "fig6";
    case Group::kFig7:
      return "fig7";
    case Group::kMerge:
      return "merge";
  }
  return "";
}

const char* LossName(Loss l) {
  switch (l) {
    case Loss::kDpo:
      return "dpo";
    case Loss::kIpo:
      return "ipo";
    case Loss::kSlic:
      return "slic";
  }
  return "";
}

const char* LossLabel(Loss l) {
  switch (l) {
    case Loss::kDpo:
      return "DPO";
    case Loss::kIpo:
      return "IPO";
    case Loss::kSlic:
      return "SLiC";
  }
  return "";
}

const char* ReferenceName(Reference r) {
  switch (r) {
    case Reference::kBehavior:
      return "behavior";
    case Reference::kSft:
      return "sft";
    case Reference::kEma:
      return "ema";
    case Reference::kStatic:
      return "static";
  }
  return "";
}

const char* MergeName(Merge m) { return m == Merge::kPeftLinear ? "peft_linear" : "mean_delta"; }

absl::StatusOr<std::set<Group>> ParseGroups(absl::string_view list) {
  std::set<Group> out;
  for (absl::string_view name : absl::StrSplit(list, ',')) {
    const auto it = std::find_if(std::begin(kAllGroups), std::end(kAllGroups),
                                 [&](Group g) { return name == GroupName(g); });
    if (it == std::end(kAllGroups)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown group '", name, "' (table1, fig4, fig5, fig6, fig7, merge)"));
    }
    out.insert(*it);
  }
  return out;
}

std::string MethodLabel(Method method, Loss loss) {
  const std::string l = LossLabel(loss);
  switch (method) {
    case Method::kOffline:
      return "Offline " + l;
    case Method::kOnPolicy:
      return "On-policy " + l;
    case Method::kBpo:
      return "On-policy BPO (" + l + ")";
    case Method::kGold:
      return "gold (BPO, 2T steps)";
  }
  return "";
}

std::string Label(const Experiment& e) {
  const std::string bpo = absl::StrCat("BPO (", LossLabel(e.loss), ")");
  const std::string on_policy = absl::StrCat("On-policy ", LossLabel(e.loss));
  switch (e.group) {
    case Group::kTable1:
      return MethodLabel(e.method, e.loss);
    case Group::kFig4:
      return absl::StrCat(bpo, ", F = ", e.phases);
    case Group::kFig5:
      return e.method == Method::kGold ? MethodLabel(e.method, e.loss)
                                       : on_policy + ", gold reference";
    case Group::kFig6:
      return absl::StrCat(
          e.method == Method::kBpo ? bpo : on_policy,
          e.members == 1 ? ", one LoRA" : absl::StrCat(", ensemble of ", e.members));
    case Group::kFig7:
      return on_policy + ", one LoRA, EMA reference";
    case Group::kMerge:
      return absl::StrCat(bpo, ", ", MergeName(e.merge), " merge");
  }
  return "";
}

namespace {

// A tldr DPO-loss run of preset `p`: T steps, F = T, the preset's ensemble.
Experiment Base(const Preset& p, Group group, Method method, int seed) {
  Experiment e;
  e.group = group;
  e.method = method;
  e.task = "tldr";
  e.seed = seed;
  e.members = p.members;
  e.steps = p.steps;
  e.phases = p.steps;
  return e;
}

// Table 1: tasks x losses x methods, seeds outermost.
void AddTable1(const Preset& p, std::vector<Experiment>& out) {
  for (int seed : p.seeds) {
    for (const std::string& task : p.tasks) {
      for (const Loss loss : kAllLosses) {
        for (const Method method : kTable1Methods) {
          Experiment e = Base(p, Group::kTable1, method, seed);
          e.task = task;
          e.loss = loss;
          e.phases = method == Method::kOffline ? 1 : p.steps;
          e.reference = method == Method::kBpo ? Reference::kBehavior : Reference::kSft;
          const char* kind = method == Method::kOffline    ? "offline"
                             : method == Method::kOnPolicy ? "onpolicy"
                                                           : "bpo";
          e.id = absl::StrCat("t1-", task, "-", LossName(loss), "-", kind, "-s", seed);
          out.push_back(e);
        }
      }
    }
  }
}

// Fig. 6: one LoRA vs an ensemble of 5, for BPO and for on-policy DPO.
void AddFig6(const Preset& p, std::vector<Experiment>& out) {
  for (const Method method : {Method::kBpo, Method::kOnPolicy}) {
    for (int members : {1, 5}) {
      if (members == p.members) continue;
      for (int seed : p.seeds) {
        Experiment e = Base(p, Group::kFig6, method, seed);
        e.members = members;
        e.reference = method == Method::kBpo ? Reference::kBehavior : Reference::kSft;
        e.id = absl::StrCat("f6-tldr-", method == Method::kBpo ? "bpo" : "onpolicy", "-m", members,
                            "-s", seed);
        out.push_back(e);
      }
    }
  }
}

}  // namespace

std::vector<Experiment> Plan(const Preset& p, const std::string& root) {
  std::vector<Experiment> out;
  Experiment gold = Base(p, Group::kFig5, Method::kGold, 100);
  gold.id = "gold-tldr";
  gold.phases = 2 * p.steps;
  gold.steps = 2 * p.steps;
  out.push_back(gold);
  AddTable1(p, out);
  for (int f : p.f_values) {
    if (f == 1 || f == p.steps) continue;  // Table 1's offline and BPO runs
    for (int seed : p.seeds) {
      Experiment e = Base(p, Group::kFig4, Method::kBpo, seed);
      e.phases = f;
      e.id = absl::StrCat("f4-tldr-F", f, "-s", seed);
      out.push_back(e);
    }
  }
  for (int seed : p.seeds) {
    Experiment e = Base(p, Group::kFig5, Method::kOnPolicy, seed);
    e.reference = Reference::kStatic;
    e.static_adapter = absl::StrCat(root, "/runs/gold-tldr/adapter");
    e.id = absl::StrCat("f5-tldr-gold-s", seed);
    out.push_back(e);
  }
  AddFig6(p, out);
  // Fig. 7: one LoRA with an EMA of the policy as the reference.
  for (int seed : p.seeds) {
    Experiment e = Base(p, Group::kFig7, Method::kOnPolicy, seed);
    e.members = 1;
    e.reference = Reference::kEma;
    e.id = absl::StrCat("f7-tldr-ema-m1-s", seed);
    out.push_back(e);
  }
  for (int seed : p.seeds) {
    Experiment e = Base(p, Group::kMerge, Method::kBpo, seed);
    e.merge = Merge::kPeftLinear;
    e.id = absl::StrCat("mg-tldr-peft-s", seed);
    out.push_back(e);
  }
  return out;
}

std::vector<Experiment> FilterGroups(std::vector<Experiment> plan, const std::set<Group>& groups) {
  plan.erase(std::remove_if(plan.begin(), plan.end(),
                            [&](const Experiment& e) { return !groups.count(e.group); }),
             plan.end());
  return plan;
}

std::string RunConfigYaml(const Preset& p, const Experiment& e, const std::string& root) {
  const std::string task_dir = TaskDir(root, e.task);
  std::ostringstream c;
  c << "# Written by bpo reproduce (" << p.name << " preset): " << Label(e) << ", seed " << e.seed
    << "\nrun_id: " << e.id << "\noutput_dir: " << root << "/runs\n"
    << "schedule: {total_steps: " << e.steps << ", phases: " << e.phases
    << ", batch_size: " << p.batch << "}\n"
    << "loss: {type: " << LossName(e.loss) << ", beta: 0.1}\n"
    << "reference: {mode: " << ReferenceName(e.reference) << ", logprob_source: learner"
    << (e.reference == Reference::kEma ? absl::StrCat(", ema_rate: ", e.ema_rate) : "")
    << (e.reference == Reference::kStatic ? absl::StrCat(", static_adapter: ", e.static_adapter)
                                          : "")
    << "}\n"
    << "lora: {members: " << e.members << ", rank: " << p.lora_rank
    << ", alpha: " << 2 * p.lora_rank
    << ", dropout: 0.0, target_modules: [all-linear], merge_mode: " << MergeName(e.merge) << "}\n"
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

std::string TaskDir(const std::string& root, const std::string& task) {
  return absl::StrCat(root, "/setup/", task);
}
std::string EvalPath(const std::string& root, const std::string& id) {
  return absl::StrCat(root, "/eval/", id, ".json");
}
std::string RunDir(const std::string& root, const std::string& id) {
  return absl::StrCat(root, "/runs/", id);
}
std::string ConfigPath(const std::string& root, const std::string& id) {
  return absl::StrCat(root, "/configs/", id, ".yaml");
}
std::string RmJudge(const std::string& root, const std::string& task) {
  return absl::StrCat("rm:", TaskDir(root, task), "/rm");
}
std::string OracleJudge(const std::string& task) { return "oracle:" + task; }
std::string SftEvalId(const std::string& task) { return "sft-" + task; }

std::vector<int> CurveSteps(const Preset& p) { return {p.steps / 4, p.steps / 2, 3 * p.steps / 4}; }

bool IsCurveRun(const Experiment& e) {
  return e.group == Group::kTable1 && e.task == "tldr" && e.loss == Loss::kDpo &&
         e.phases == e.steps;
}

std::string CurveId(const Experiment& e, int step) {
  return absl::StrCat("curve-", e.id, "-step", step);
}

}  // namespace bpo::experiments
