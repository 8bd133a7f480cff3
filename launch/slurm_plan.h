// Where each process of a run goes in a Slurm allocation (`bpo deploy
// slurm`), computed from the run config so that counts cannot drift from it.
//
// One allocation (the default): node 0 runs the coordinator (and the batch
// script, and the human-annotation service); the learner ranks take one GPU
// each, spread evenly over as few nodes as hold them; the actors, and the
// annotators with a reward model, take one GPU each on the GPUs left, then on
// further nodes. Annotators without a model (rule) and the human service run
// on node 0 without a GPU. On CPUs (model.device cpu) the learner ranks share one node
// (node 1 when there are several: Gloo connects them over loopback) and the
// workers go round the nodes.
//
// Heterogeneous job (--hetjob): component 0 is one CPU node with the
// coordinator and every worker that needs no GPU; component 1 the GPU nodes
// with the learner ranks and the GPU workers (on CPUs: the learner ranks).
#ifndef BPO_LAUNCH_SLURM_PLAN_H_
#define BPO_LAUNCH_SLURM_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/config.pb.h"

namespace bpo::launch {

struct SlurmOptions {
  bool hetjob = false;
  // GPUs of each GPU node; required when model.device is cuda.
  int gpus_per_node = 0;
  // Nodes of the allocation (of the GPU component with hetjob); 0: as many as
  // the processes need. On GPUs it must be exactly that (a spare GPU would
  // idle: raise launch.actors instead).
  int nodes = 0;
  int cpus_per_task = 0;      // per process; 0: 4 with GPUs, 1 on CPUs
  std::string partition;      // empty: the cluster's default
  std::string cpu_partition;  // hetjob component 0; empty: `partition`
  std::string account;
  std::string time;  // Slurm's --time: "HH:MM:SS", "D-HH:MM:SS", minutes
  // The raters file of the human-annotation service (annotation.kind human).
  std::string human_raters;
  // Learner ranks meet at tcp:<first learner node>:<port>; 0: a port derived
  // from the job id at run time (20000 + id % 10000), + 1 at each restart.
  int rendezvous_port = 0;
};

// One srun step: a process, or every learner rank.
struct SlurmStep {
  enum class Kind { kCoordinator, kLearners, kActor, kAnnotator, kHuman };
  Kind kind;
  std::string name;   // "coordinator", "learner", "actor-3", "annotator-0", "human"
  int component = 0;  // het group (0 without hetjob)
  int node = 0;       // index of its first node within the component
  int nodes = 1;      // consecutive nodes from `node`
  int tasks = 1;      // processes (learner ranks)
  int tasks_per_node = 1;
  bool gpu = false;  // one GPU per task
};

struct SlurmComponent {
  int nodes = 1;
  int tasks_per_node = 1;  // the most steps' tasks any of its nodes runs
  int gpus_per_node = 0;
  std::string partition;
};

struct SlurmPlan {
  std::vector<SlurmComponent> components;  // 1, or 2 for a heterogeneous job
  // Coordinator first, then the learner ranks, actors, annotators or the
  // human service: the order the batch script starts them in.
  std::vector<SlurmStep> steps;
  int cpus_per_task = 1;
  bool gpus = false;  // model.device is cuda
  int idle_gpus = 0;  // GPUs of the allocation no process uses
};

// INVALID_ARGUMENT naming the key or flag for a config or options the job
// cannot run: model.device cuda without --gpus_per_node (or cuda:N),
// learner ranks that cannot share a node or GPU, security.plaintext over more
// than one node, annotation.kind human without --human_raters, a bad --time.
absl::StatusOr<SlurmPlan> PlanSlurmJob(const bpo::v1::RunConfig& config,
                                       const SlurmOptions& options);

// "coordinator on node 0 of component 0; learner ranks 0-7 on nodes 0-1 (4
// GPUs each); actor-0 on node 2 (GPU); ..." one line a step, for the batch
// script's header and the command's output.
std::string DescribeSlurmPlan(const SlurmPlan& plan);

}  // namespace bpo::launch

#endif  // BPO_LAUNCH_SLURM_PLAN_H_
