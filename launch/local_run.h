// A whole run on one machine (`bpo local`): the coordinator, the learner
// ranks, the actors and the annotators as child processes of this one on
// loopback ports, the run's progress, restarts or a stop on a child's death
// as configured (launch.*), and a clean stop on request.
//
// Run directory <output_dir>/<run_id>/: local-config.yaml (the config every
// child reads, ports filled in), logs/<process>.log, pids/<process>.pid,
// prometheus-targets.json (file_sd targets of every /metrics endpoint),
// certs/ (the run CA and every process's certificate), rendezvous/<launch>/
// (the learner ranks' meeting place, new for each launch; earlier launches'
// are removed), and what the processes write themselves (coordinator.db,
// checkpoints, ...).
//
// Children: "coordinator", "learner-<rank>", "actor-<i>", "annotator-<i>",
// started in that order (the others once the coordinator serves). A learner
// rank's death stops the run (launch.on_learner_failure: stop) or restarts
// every rank from the last checkpoint with a new rendezvous (restart); any
// other child's death restarts it (launch.on_worker_failure: restart) or stops
// the run, and so does a child's launch.max_restarts + 1st death. The run is
// done when every learner rank exited 0. Stopping: every worker first, then
// the coordinator (its store is always consistent), each SIGTERM then SIGKILL
// after 10 s.
#ifndef BPO_LAUNCH_LOCAL_RUN_H_
#define BPO_LAUNCH_LOCAL_RUN_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "bpo/v1/config.pb.h"
#include "common/transport.h"

namespace bpo::launch {

struct LocalRunOptions {
  bpo::v1::RunConfig config;               // endpoints are replaced with loopback addresses
  std::string config_source;               // where the config came from, noted in local-config.yaml
  std::string program = "/proc/self/exe";  // the `bpo` binary every child runs
  // Polled a few times a second; true stops every child (exit code 130).
  std::function<bool()> stop_requested;
  // GPUs visible on this host (bpo local counts them). With model.device
  // "cuda", each child gets BPO_CUDA_DEVICE from AssignGpus.
  int cuda_devices = 0;
};

// Which GPU each process of a run uses on a host with `gpus` GPUs: learner
// rank r takes GPU r (one GPU per rank; more ranks than GPUs is an error, as
// NCCL cannot put two ranks of one communicator on a GPU); the actors and then
// the annotators take the GPUs the learners left free, in turn, or share all
// of them when the learners use every GPU. Returned in that order: learners,
// actors, annotators.
struct GpuAssignment {
  std::vector<int> learners, actors, annotators;
};
absl::StatusOr<GpuAssignment> AssignGpus(int learners, int actors, int annotators, int gpus);

// The launcher's transport for a run: unless security.plaintext, creates the
// run CA in the certificate directory (CertificateDir) if it has none and
// issues every process's certificate that is missing or stale: coordinator,
// learner-<rank>, actor-<i>, annotator-<i>, and two observers, launcher and
// prometheus (for scrapes). Then loads the launcher's.
absl::StatusOr<TransportSecurity> PrepareLocalTransport(const bpo::v1::RunConfig& config);

// Carries the run out, writing its progress and what happens to stdout.
// Returns the exit code once it ended: 0 when every learner rank finished
// (or the store already holds every step: the run is said to be finished and
// nothing starts), 1 when a child's death stopped it, 130 when
// stop_requested. An error when it could not be set up or started (the run
// directory cannot be written; the coordinator died during start-up, said at
// once with the end of its log, or did not serve within 60 s); nothing is
// left running.
absl::StatusOr<int> RunLocal(LocalRunOptions options);

}  // namespace bpo::launch

#endif  // BPO_LAUNCH_LOCAL_RUN_H_
