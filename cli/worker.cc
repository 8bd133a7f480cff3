#include "cli/worker.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "common/config.h"
#include "common/endpoint.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/version.h"

namespace bpo::cli {
namespace {

std::atomic<int> g_stops{0};

void OnStop(int) {
  if (g_stops.fetch_add(1) >= 1) _exit(130);
}

}  // namespace

void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnStop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool StopRequested() { return g_stops.load() > 0; }

std::string DefaultWorkerName(const std::string& kind) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(kind, "-", host, "-", getpid());
}

absl::StatusOr<Worker> ConnectWorker(bpo::v1::WorkerInfo info) {
  std::string address = absl::GetFlag(FLAGS_coordinator);
  // The local config only says where the coordinator is and how long to
  // wait; everything else comes from the coordinator.
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<RunConfigFile> file = path.empty() ? DefaultRunConfig() : LoadRunConfig(path);
  if (!file.ok()) return file.status();
  if (address.empty()) address = file->config.endpoints().coordinator();
  const double deadline = file->config.endpoints().rpc_deadline_seconds();
  const std::string flag_name = absl::GetFlag(FLAGS_name);
  if (!flag_name.empty()) info.set_name(flag_name);
  Worker w;
  BPO_ASSIGN_OR_RETURN(w.transport, TransportFromFlags(file->config, info.name()));
  // Without --name, a worker is called what its certificate says.
  if (flag_name.empty() && w.transport.identity.has_value()) {
    info.set_name(w.transport.identity->name);
  }
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  info.set_host(host);
  info.set_bpo_version(kBpoVersion);
  coordinator::ClientOptions options;
  options.address = address;
  options.rpc_deadline = absl::Seconds(deadline);
  options.transport = w.transport;
  BPO_ASSIGN_OR_RETURN(w.client, coordinator::CoordinatorClient::Connect(options));
  BPO_ASSIGN_OR_RETURN(bpo::v1::RegisterResponse registered, w.client->Register(info));
  w.config = registered.config();
  w.run_id = registered.run_id();
  BPO_LOG(INFO) << "registered with the coordinator at " << address << " as "
                << registered.worker_id() << " (" << info.name() << ") in run " << w.run_id
                << " over " << w.transport.Describe();
  const absl::Duration every = absl::Seconds(registered.heartbeat_interval().seconds()) +
                               absl::Nanoseconds(registered.heartbeat_interval().nanos());
  // Actors and annotators hold leases only while their work loop makes
  // progress; a stalled one exits for its launcher to restart it.
  const bool holds_leases =
      info.kind() == bpo::v1::WORKER_KIND_ACTOR || info.kind() == bpo::v1::WORKER_KIND_ANNOTATOR;
  const absl::Duration stall = absl::Seconds(w.config.coordinator().stall_seconds());
  w.client->StartHeartbeats(
      every > absl::ZeroDuration() ? every : absl::Seconds(2),
      holds_leases ? stall : absl::ZeroDuration(), [](absl::Duration since) {
        std::cerr << "bpo: no progress for " << absl::FormatDuration(since)
                  << " (coordinator.stall_seconds); exiting with status " << kExitStalled
                  << " so that the launcher restarts this worker; its leases expire and their "
                     "work goes back to the queue\n"
                  << std::flush;
        _exit(kExitStalled);
      });
  return w;
}

absl::StatusOr<std::unique_ptr<HttpServer>> StartWorkerMetrics(const Worker& worker,
                                                               metrics::Registry* registry) {
  const bpo::v1::RunConfig& config = worker.config;
  std::string address = absl::GetFlag(FLAGS_metrics_address);
  if (address.empty()) {
    auto ep = ParseEndpoint(config.endpoints().metrics());
    address = absl::StrCat(ep.ok() ? ep->host : "127.0.0.1", ":0");
  }
  BPO_ASSIGN_OR_RETURN(HttpServerOptions options, MetricsServerOptions(address, worker.transport));
  BPO_ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> server, HttpServer::Start(options));
  ServeMetrics(registry, server.get());
  BPO_RETURN_IF_ERROR(PublishAddresses({{"metrics", server->address()}}));
  return server;
}

}  // namespace bpo::cli
