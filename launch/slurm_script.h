// `bpo deploy slurm`: a run config rendered as a Slurm batch script, so
// that process counts, names, ports and paths cannot drift from the config.
//
// Files written to the output directory:
//   run.yaml    the effective config every process reads: the given one with
//               endpoints.coordinator "file:<run dir>/addresses/coordinator.json"
//               and the snapshot and metrics endpoints on port 0 of every
//               interface (loopback with security.plaintext)
//   bpo.sbatch  the batch script (heterogeneous with --hetjob)
// and <run dir>/logs/ is created (Slurm opens the job's output file there).
//
// What the batch script does, in one allocation:
//  1. exits 0 at once when the run is finished (`bpo deploy status`);
//  2. makes the run CA and every process's certificate in the certificate
//     directory unless they exist (`bpo certs init|issue`, --hosts = the
//     allocation's nodes; not with security.plaintext);
//  3. starts, each as an srun step placed as SlurmPlan says: the coordinator
//     (--listen 0.0.0.0:0, publishing its address in the address file), the
//     learner ranks (--rank=$SLURM_PROCID, --rendezvous tcp:<NodeAddr of the
//     first learner node>:<port>; on GPUs each rank takes the GPU of its
//     SLURM_LOCALID), the actors and annotators (or the human service), and
//     `bpo deploy watch`, which keeps <run dir>/prometheus-targets.json
//     current and prints the progress;
//  4. restarts a failed worker (launch.on_worker_failure, max_restarts) and
//     all learner ranks (launch.on_learner_failure: restart) from the last
//     checkpoint;
//  5. once the learner ranks ended and the run is finished, stops the
//     workers, then the coordinator, and exits 0 (1 when the run stopped).
// Requeue-safe (#SBATCH --requeue, --open-mode=append): nothing is kept
// outside the run directory, so a requeued job resumes from the store and the
// checkpoints there.
#ifndef BPO_LAUNCH_SLURM_SCRIPT_H_
#define BPO_LAUNCH_SLURM_SCRIPT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bpo/v1/config.pb.h"
#include "launch/slurm_plan.h"

namespace bpo::launch {

struct SlurmRenderOptions {
  bpo::v1::RunConfig config;  // resolved (absolute paths), as LoadRunConfig gives it
  std::string config_source;  // named in the files' headers
  std::string out_dir;        // absolute: where run.yaml and bpo.sbatch go
  std::string bpo;            // absolute path of the `bpo` binary on the nodes
  SlurmOptions slurm;
};

struct SlurmJob {
  bpo::v1::RunConfig config;  // the effective config (run.yaml)
  std::string config_yaml;    // run.yaml
  std::string sbatch;         // bpo.sbatch
  SlurmPlan plan;
  std::string run_dir;
};

// The effective config: endpoints rewritten for the allocation (above).
absl::StatusOr<bpo::v1::RunConfig> SlurmRunConfig(const bpo::v1::RunConfig& config);

// INVALID_ARGUMENT naming the key or flag: whatever PlanSlurmJob refuses,
// security.ca/cert/key (every process needs its own certificate), or a path
// that an #SBATCH line or the script could not carry (blanks, quotes, %).
absl::StatusOr<SlurmJob> RenderSlurmJob(const SlurmRenderOptions& options);

// Writes <out_dir>/run.yaml and <out_dir>/bpo.sbatch (executable) and makes
// <run dir>/logs.
absl::Status WriteSlurmJob(const SlurmJob& job, const std::string& out_dir);

}  // namespace bpo::launch

#endif  // BPO_LAUNCH_SLURM_SCRIPT_H_
