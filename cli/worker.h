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
#include "common/transport.h"
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
  // From the local config's security section and the --tls_* flags.
  TransportSecurity transport;
};

// Address: --coordinator, else endpoints.coordinator of --config (or the
// defaults). Name: --name, else the name in the certificate given by
// --tls_cert or security.cert, else <kind>-<host>-<pid>. The transport comes
// from the local config (TransportFromFlags). Starts heartbeats.
absl::StatusOr<Worker> ConnectWorker(bpo::v1::WorkerInfo info);

// Serves /metrics for a worker over its transport: --metrics_address, else
// the config's metrics host on a free port (several workers share a machine).
absl::StatusOr<std::unique_ptr<HttpServer>> StartWorkerMetrics(const Worker& worker,
                                                               metrics::Registry* registry);

// "<kind>-<host>-<pid>"
std::string DefaultWorkerName(const std::string& kind);

}  // namespace bpo::cli

#endif  // BPO_CLI_WORKER_H_
