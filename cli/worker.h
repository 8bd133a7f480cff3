// What every worker process (actor, annotator, learner) does first: install
// the stop signals, connect to the coordinator and register, taking the
// run's effective config from it.
#ifndef BPO_CLI_WORKER_H_
#define BPO_CLI_WORKER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bpo/v1/common.pb.h"
#include "bpo/v1/config.pb.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "coordinator/client.h"

namespace bpo::cli {

// SIGINT and SIGTERM set a flag that StopRequested() reads (a second one
// exits at once).
void InstallStopHandlers();
bool StopRequested();

struct Worker {
  std::unique_ptr<coordinator::CoordinatorClient> client;
  bpo::v1::RunConfig config;  // from the coordinator
  std::string run_id;
};

// Address: --coordinator, else endpoints.coordinator of --config (or the
// defaults). Name: --name, else <kind>-<host>-<pid>. Starts heartbeats.
absl::StatusOr<Worker> ConnectWorker(bpo::v1::WorkerInfo info);

// Serves /metrics for a worker: --metrics_address, else the config's metrics
// host on a free port (several workers share a machine).
absl::StatusOr<std::unique_ptr<HttpServer>> StartWorkerMetrics(const bpo::v1::RunConfig& config,
                                                               metrics::Registry* registry);

// "<kind>-<host>-<pid>"
std::string DefaultWorkerName(const std::string& kind);

}  // namespace bpo::cli

#endif  // BPO_CLI_WORKER_H_
