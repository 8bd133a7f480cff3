#include "launch/slurm_plan.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bpo::launch {
namespace {

using Kind = SlurmStep::Kind;

absl::Status Invalid(const std::string& key, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", why));
}

// Slurm's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
bool IsSlurmTime(const std::string& t) {
  if (t.empty() || !absl::ascii_isdigit(t.front()) || !absl::ascii_isdigit(t.back())) return false;
  int colons = 0, dashes = 0;
  for (char c : t) {
    if (c == ':') ++colons;
    if (c == '-') ++dashes;
    if (!absl::ascii_isdigit(c) && c != ':' && c != '-') return false;
  }
  return dashes <= 1 && colons <= 2 && t.find("::") == std::string::npos &&
         (dashes == 0 || t.find('-') < t.find(':'));
}

struct Counts {
  int learners, actors, annotators;  // annotators: model or rule ones (not human)
  bool human;
  bool gpu_annotators;  // a reward model on the GPU
};

// Places one task of `kind` on a node of `component`; keeps the per-node task
// counts for the component's tasks_per_node.
class Placer {
 public:
  explicit Placer(SlurmPlan* plan) : plan_(plan) {}

  void Add(Kind kind, std::string name, int component, int node, bool gpu) {
    plan_->steps.push_back({kind, std::move(name), component, node, 1, 1, 1, gpu});
    ++tasks_[{component, node}];
  }
  // `ranks` learner ranks, `per_node` a node from node `first` on.
  void AddLearners(int component, int first, int nodes, int ranks, int per_node, bool gpu) {
    plan_->steps.push_back(
        {Kind::kLearners, "learner", component, first, nodes, ranks, per_node, gpu});
    for (int n = 0; n < nodes; ++n) {
      tasks_[{component, first + n}] += std::min(per_node, ranks - n * per_node);
    }
  }
  void set_idle_gpus(int n) { plan_->idle_gpus = n; }
  void Finish() {
    for (const auto& [where, tasks] : tasks_) {
      SlurmComponent& c = plan_->components[where.first];
      c.tasks_per_node = std::max(c.tasks_per_node, tasks);
    }
  }

 private:
  SlurmPlan* plan_;
  std::map<std::pair<int, int>, int> tasks_;  // (component, node) -> tasks
};

// The GPU workers (actors, then annotators with a model) on the GPUs the
// learner ranks leave: `free[n]` on node n of `component`, in node order.
void PlaceGpuWorkers(const Counts& c, int component, std::vector<int> free, Placer& placer) {
  std::vector<std::pair<Kind, std::string>> workers;
  for (int i = 0; i < c.actors; ++i) workers.push_back({Kind::kActor, absl::StrCat("actor-", i)});
  if (c.gpu_annotators) {
    for (int i = 0; i < c.annotators; ++i) {
      workers.push_back({Kind::kAnnotator, absl::StrCat("annotator-", i)});
    }
  }
  size_t next = 0;
  for (int node = 0; node < static_cast<int>(free.size()) && next < workers.size(); ++node) {
    for (; free[node] > 0 && next < workers.size(); --free[node], ++next) {
      placer.Add(workers[next].first, workers[next].second, component, node, true);
    }
  }
}

// GPU layout of `component`: the learner ranks spread evenly over as few
// nodes as hold them (one step gives each of its nodes the same number of
// GPUs), then the GPU workers. Returns the nodes it needs.
absl::StatusOr<int> PlanGpuComponent(const Counts& c, const SlurmOptions& options, int component,
                                     Placer& placer) {
  const int g = options.gpus_per_node;
  const int learner_nodes = (c.learners + g - 1) / g;
  const int per_node = (c.learners + learner_nodes - 1) / learner_nodes;
  const int gpu_workers = c.actors + (c.gpu_annotators ? c.annotators : 0);
  const int spare = learner_nodes * (g - per_node);
  const int nodes = learner_nodes + (std::max(0, gpu_workers - spare) + g - 1) / g;
  const int used = learner_nodes * per_node + gpu_workers;
  if (options.nodes != 0 && options.nodes < nodes) {
    return Invalid("--nodes", absl::StrCat(options.nodes, " node(s) of ", g, " GPUs are too few: ",
                                           c.learners, " learner rank(s) and ", gpu_workers,
                                           " GPU worker(s) (launch.actors",
                                           c.gpu_annotators ? ", launch.annotators" : "", ") need ",
                                           nodes, "; drop --nodes"));
  }
  if (options.nodes > nodes) {
    const int idle = options.nodes * g - used;
    return Invalid("launch.actors", absl::StrCat(c.actors, " actor(s) leave ", idle, " of the ",
                                                 options.nodes * g, " GPUs of --nodes=",
                                                 options.nodes, " idle: raise launch.actors to ",
                                                 c.actors + idle, " or drop --nodes"));
  }
  placer.AddLearners(component, 0, learner_nodes, c.learners, per_node, true);
  placer.set_idle_gpus(nodes * g - used);
  std::vector<int> free(nodes, g);
  for (int n = 0; n < learner_nodes; ++n) free[n] -= per_node;
  PlaceGpuWorkers(c, component, free, placer);
  return nodes;
}

}  // namespace

absl::StatusOr<SlurmPlan> PlanSlurmJob(const bpo::v1::RunConfig& config,
                                       const SlurmOptions& options) {
  const std::string& device = config.model().device();
  const bool gpus = absl::StartsWith(device, "cuda");
  if (absl::StartsWith(device, "cuda:")) {
    return Invalid("model.device", absl::StrCat("'", device,
                                                "' names one GPU for every process; use cuda "
                                                "(each process takes the GPU Slurm gives it)"));
  }
  if (gpus && options.gpus_per_node < 1) {
    return Invalid("--gpus_per_node", "model.device is cuda: say how many GPUs a node has");
  }
  if (!gpus && options.gpus_per_node != 0) {
    return Invalid("--gpus_per_node", "model.device is cpu: the processes use no GPU");
  }
  if (options.nodes < 0) return Invalid("--nodes", "must be >= 0");
  if (options.cpus_per_task < 0) return Invalid("--cpus_per_task", "must be >= 0");
  if (options.rendezvous_port < 0 || options.rendezvous_port > 65535) {
    return Invalid("--rendezvous_port", "must be in [1, 65535], or 0 to derive it from the job id");
  }
  if (!options.time.empty() && !IsSlurmTime(options.time)) {
    return Invalid("--time", absl::StrCat("'", options.time,
                                          "' is not a Slurm time (HH:MM:SS, D-HH:MM:SS, minutes)"));
  }
  const bool human = config.annotation().kind() == bpo::v1::AnnotationConfig::HUMAN;
  if (human && options.human_raters.empty()) {
    return Invalid("annotation.kind",
                   "human: pass --human_raters FILE (from `bpo annotator add-rater`) for the "
                   "human-annotation service");
  }
  if (!human && !options.human_raters.empty()) {
    return Invalid("--human_raters", "the human-annotation service needs annotation.kind: human");
  }
  const Counts c{config.learner().world_size(), config.launch().actors(),
                 human ? 0 : config.launch().annotators(), human,
                 gpus && config.annotation().kind() == bpo::v1::AnnotationConfig::RM};
  if (config.security().plaintext() && (options.hetjob || options.nodes > 1)) {
    return Invalid("security.plaintext",
                   "plaintext connects only over loopback, so every process must share one "
                   "node: use TLS (the default) for --hetjob or --nodes > 1");
  }

  SlurmPlan plan;
  plan.gpus = gpus;
  plan.cpus_per_task = options.cpus_per_task > 0 ? options.cpus_per_task : gpus ? 4 : 1;
  const std::string cpu_partition =
      options.cpu_partition.empty() ? options.partition : options.cpu_partition;
  Placer placer(&plan);
  // Workers without a GPU, on node 0 of component 0 (gpus) or round the
  // component's nodes (CPUs).
  auto place_cpu_workers = [&](int component, int nodes) {
    int next = 0;
    auto node = [&] { return gpus ? 0 : next++ % nodes; };
    if (!gpus) {
      for (int i = 0; i < c.actors; ++i) {
        placer.Add(Kind::kActor, absl::StrCat("actor-", i), component, node(), false);
      }
    }
    if (!c.gpu_annotators) {
      for (int i = 0; i < c.annotators; ++i) {
        placer.Add(Kind::kAnnotator, absl::StrCat("annotator-", i), component, node(), false);
      }
    }
    if (human) placer.Add(Kind::kHuman, "human", component, 0, false);
  };

  if (options.hetjob) {
    plan.components.push_back({1, 1, 0, cpu_partition});
    plan.components.push_back({1, 1, gpus ? options.gpus_per_node : 0, options.partition});
    placer.Add(Kind::kCoordinator, "coordinator", 0, 0, false);
    if (gpus) {
      absl::StatusOr<int> nodes = PlanGpuComponent(c, options, 1, placer);
      if (!nodes.ok()) return nodes.status();
      plan.components[1].nodes = *nodes;
    } else {
      if (options.nodes > 1) {
        return Invalid("--nodes", "learner ranks on CPUs (Gloo over loopback) share one node");
      }
      placer.AddLearners(1, 0, 1, c.learners, c.learners, false);
    }
    place_cpu_workers(0, 1);
  } else if (gpus) {
    plan.components.push_back({1, 1, options.gpus_per_node, options.partition});
    placer.Add(Kind::kCoordinator, "coordinator", 0, 0, false);
    absl::StatusOr<int> nodes = PlanGpuComponent(c, options, 0, placer);
    if (!nodes.ok()) return nodes.status();
    plan.components[0].nodes = *nodes;
    place_cpu_workers(0, *nodes);
  } else {
    const int nodes = std::max(1, options.nodes);
    plan.components.push_back({nodes, 1, 0, options.partition});
    placer.Add(Kind::kCoordinator, "coordinator", 0, 0, false);
    placer.AddLearners(0, nodes > 1 ? 1 : 0, 1, c.learners, c.learners, false);
    place_cpu_workers(0, nodes);
  }
  placer.Finish();
  return plan;
}

std::string DescribeSlurmPlan(const SlurmPlan& plan) {
  std::string out;
  const bool het = plan.components.size() > 1;
  for (size_t i = 0; i < plan.components.size(); ++i) {
    const SlurmComponent& c = plan.components[i];
    absl::StrAppend(&out, het ? absl::StrCat("component ", i, ": ") : "allocation: ", c.nodes,
                    " node(s)",
                    c.gpus_per_node > 0 ? absl::StrCat(" of ", c.gpus_per_node, " GPUs") : "", ", ",
                    c.tasks_per_node, " task(s) of ", plan.cpus_per_task, " CPU(s) a node",
                    c.partition.empty() ? "" : ", partition " + c.partition, "\n");
  }
  for (const SlurmStep& s : plan.steps) {
    const std::string where =
        absl::StrCat(het ? absl::StrCat("component ", s.component, " ") : "", "node ", s.node,
                     s.nodes > 1 ? absl::StrCat("-", s.node + s.nodes - 1) : "");
    if (s.kind == Kind::kLearners) {
      absl::StrAppend(&out, "  learner-0..", s.tasks - 1, ": ", where, ", ", s.tasks_per_node,
                      " a node", s.gpu ? ", one GPU each" : "", "\n");
    } else {
      absl::StrAppend(&out, "  ", s.name, ": ", where, s.gpu ? ", one GPU" : "", "\n");
    }
  }
  if (plan.idle_gpus > 0) {
    absl::StrAppend(&out, "  ", plan.idle_gpus,
                    " GPU(s) idle: raise launch.actors by as many to use them\n");
  }
  return out;
}

}  // namespace bpo::launch
