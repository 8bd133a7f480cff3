// bpo learner: trains the LoRA ensemble (learner::Learner). Online mode (the
// default) takes its batches from the coordinator and publishes the behavior
// snapshots it asks for; offline mode (--pairs) trains from a static
// preference file, which is also the offline-DPO baseline (F = 1).
#include <iostream>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "cli/worker.h"
#include "common/config.h"
#include "common/endpoint.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "common/process_metrics.h"
#include "common/status_macros.h"
#include "learner/learner.h"

ABSL_FLAG(std::string, output, "",
          "Output directory; overrides output_dir (run files go to "
          "<output>/<run_id>).");
ABSL_FLAG(bool, resume, true, "Resume from the newest complete checkpoint of the run.");
ABSL_FLAG(int64_t, max_steps, 0, "Stop after this many steps in this invocation (0: run to T).");
ABSL_FLAG(int64_t, snapshot_every, 0,
          "Rank 0 publishes a behavior snapshot (the merged ensemble) every N steps, served by "
          "the snapshot service on endpoints.snapshots and written to learner.snapshot_dir when "
          "set; 0: none. (The coordinator will ask for them every K steps.)");
ABSL_FLAG(int, rank, 0, "This process's rank among learner.world_size data-parallel ranks.");
ABSL_FLAG(std::string, rendezvous, "",
          "Where ranks meet: file:DIR (a shared directory) or tcp:HOST:PORT (rank 0 listens); "
          "empty: file:<run dir>/rendezvous.");

namespace bpo::cli {
namespace {

// Online: registers with the coordinator, whose config is the run's (with
// this machine's endpoints). Offline: the local config.
absl::Status LoadConfig(bool online, int rank, std::optional<Worker>* worker,
                        bpo::v1::RunConfig* config) {
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<RunConfigFile> local = path.empty() ? DefaultRunConfig() : LoadRunConfig(path);
  if (!local.ok()) return local.status();
  *config = local->config;
  if (online) {
    bpo::v1::WorkerInfo info;
    info.set_kind(bpo::v1::WORKER_KIND_LEARNER);
    info.set_name(absl::StrCat("learner-", rank));
    info.set_rank(rank);
    info.set_world_size(local->config.learner().world_size());
    absl::StatusOr<Worker> connected = ConnectWorker(info);
    if (!connected.ok()) return connected.status();
    *worker = std::move(*connected);
    *config = (*worker)->config;
    *config->mutable_endpoints() = local->config.endpoints();  // this machine's to choose
  }
  if (!absl::GetFlag(FLAGS_policy).empty()) {
    config->mutable_model()->set_policy(absl::GetFlag(FLAGS_policy));
  }
  if (!absl::GetFlag(FLAGS_output).empty()) config->set_output_dir(absl::GetFlag(FLAGS_output));
  return absl::OkStatus();
}

// --metrics_address, else endpoints.metrics; online ranks > 0 on one host
// cannot share rank 0's port and take a free one.
absl::StatusOr<std::unique_ptr<HttpServer>> StartMetrics(const bpo::v1::RunConfig& config,
                                                         const TransportSecurity& transport,
                                                         bool online, int rank,
                                                         metrics::Registry* registry) {
  std::string address = absl::GetFlag(FLAGS_metrics_address);
  if (address.empty()) {
    address = config.endpoints().metrics();
    auto ep = ParseEndpoint(address);
    if (online && rank > 0 && ep.ok()) address = absl::StrCat(ep->host, ":0");
  }
  BPO_ASSIGN_OR_RETURN(HttpServerOptions options, MetricsServerOptions(address, transport));
  BPO_ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> server, HttpServer::Start(options));
  ServeMetrics(registry, server.get());
  BPO_RETURN_IF_ERROR(PublishAddresses({{"metrics", server->address()}}));
  return server;
}

int RunLearner(const std::vector<std::string>&) {
  InstallStopHandlers();
  learner::LearnerOptions options;
  options.pairs_path = absl::GetFlag(FLAGS_pairs);
  options.rank = absl::GetFlag(FLAGS_rank);
  options.resume = absl::GetFlag(FLAGS_resume);
  options.max_steps = absl::GetFlag(FLAGS_max_steps);
  options.snapshot_every = absl::GetFlag(FLAGS_snapshot_every);
  options.rendezvous = absl::GetFlag(FLAGS_rendezvous);
  options.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  options.stop = [] { return StopRequested(); };
  const bool online = options.pairs_path.empty();
  std::optional<Worker> worker;
  if (auto s = LoadConfig(online, options.rank, &worker, &options.config); !s.ok())
    return Fail("learner", s);

  // Online: the transport ConnectWorker loaded. Offline: this rank's
  // certificate if it has one; without one it serves neither /metrics nor
  // snapshots (never unauthenticated).
  absl::StatusOr<TransportSecurity> transport =
      worker.has_value()
          ? absl::StatusOr<TransportSecurity>(worker->transport)
          : TransportFromFlags(options.config, absl::StrCat("learner-", options.rank));
  if (transport.ok()) options.transport = *transport;
  options.serve_snapshots = transport.ok();

  metrics::Registry registry;
  registry.AddCollector(metrics::MakeProcessCollector("learner"));
  auto learner = learner::Learner::Create(
      options, worker.has_value() ? worker->client.get() : nullptr, &registry);
  if (!learner.ok()) return Fail("learner", learner.status());
  std::unique_ptr<HttpServer> server;  // serves while the learner runs
  if (transport.ok()) {
    auto started = StartMetrics(options.config, *transport, online, options.rank, &registry);
    if (!started.ok()) return Fail("learner", started.status());
    server = std::move(*started);
  } else {
    BPO_LOG(WARNING) << "learner: serving neither /metrics nor snapshots ("
                     << transport.status().message() << ")";
  }
  if (auto s = (*learner)->Run(); !s.ok()) return Fail("learner", s);
  return kExitOk;
}

}  // namespace

const Command& LearnerCommand() {
  static const Command kCommand{
      "learner",
      "Train the LoRA ensemble on the coordinator's batches (or offline: --pairs).",
      "bpo learner --config FILE [--coordinator HOST:PORT] [--rank R] | --pairs FILE.jsonl",
      __FILE__,
      0,
      0,
      &RunLearner,
      {},
      {"config", "pairs", "metrics_address", "address_file", "coordinator", "name", "policy",
       "max_prompt_tokens", "tls_ca", "tls_cert", "tls_key"}};
  return kCommand;
}

}  // namespace bpo::cli
