// bpo coordinator: hosts the run's store and its four gRPC services.
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "cli/worker.h"
#include "common/config.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "common/process_metrics.h"
#include "common/rpc.h"
#include "coordinator/run_plan.h"
#include "coordinator/run_store.h"
#include "coordinator/service.h"
#include "data/prompts.h"
#include "model/hf_config.h"

ABSL_FLAG(std::string, listen, "",
          "Serve gRPC here (host:port, port 0 picks one); empty uses endpoints.coordinator, or "
          "127.0.0.1:0 when that is an address file (file:PATH).");
ABSL_FLAG(std::string, store, "",
          "SQLite store; empty uses coordinator.store or <output_dir>/<run_id>/coordinator.db.");
ABSL_FLAG(double, linger_seconds, 10,
          "After the last step is committed, keep serving this long so workers learn the run "
          "is done, then exit.");

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;

int RunCoordinator(const std::vector<std::string>&) {
  InstallStopHandlers();
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<RunConfigFile> file = path.empty() ? DefaultRunConfig() : LoadRunConfig(path);
  if (!file.ok()) return Fail("coordinator", file.status());
  bpo::v1::RunConfig config = file->config;
  // Where to listen; with a "file:PATH" endpoint the bound address is
  // published there for the workers (common/address_file.h).
  const std::string endpoint_file = FileEndpointPath(config.endpoints().coordinator());
  std::string listen = absl::GetFlag(FLAGS_listen);
  if (listen.empty()) {
    listen = endpoint_file.empty() ? config.endpoints().coordinator() : "127.0.0.1:0";
  }
  auto plan = coordinator::MakeRunPlan(config);
  if (!plan.ok()) return Fail("coordinator", plan.status());
  std::string store_path = absl::GetFlag(FLAGS_store);
  if (store_path.empty()) store_path = config.coordinator().store();
  if (store_path.empty()) {
    auto default_store = RunPath(config, "coordinator.db");
    if (!default_store.ok()) return Fail("coordinator", default_store.status());
    store_path = *default_store;
  }
  std::error_code ec;
  fs::create_directories(fs::path(store_path).parent_path(), ec);
  if (ec)
    return Fail("coordinator",
                absl::PermissionDeniedError(absl::StrCat(store_path, ": ", ec.message())));

  // A restarted coordinator takes the prompts from its store.
  coordinator::RunStoreOptions so;
  so.path = store_path;
  so.fsync = config.coordinator().fsync();
  auto store = coordinator::RunStore::Open(
      config, [&] { return data::LoadPrompts(config.data()); }, so);
  if (!store.ok()) return Fail("coordinator", store.status());

  metrics::Registry registry;
  registry.AddCollector(metrics::MakeProcessCollector("coordinator"));
  registry.AddCollector(coordinator::MakeStoreCollector(store->get()));
  auto rpc_metrics = coordinator::RpcMetrics::Create(&registry);
  if (!rpc_metrics.ok()) return Fail("coordinator", rpc_metrics.status());
  // Token ids of submitted pairs are checked against the policy's vocabulary:
  // coordinator.vocab_size, else model.policy's config.json.
  coordinator::ValidationLimits limits = coordinator::LimitsFromConfig(config);
  // Without it a pair the learner cannot train could enter the store: the
  // coordinator does not start then (fail closed).
  if (limits.vocab_size == 0) {
    absl::StatusOr<model::CausalLmConfig> model =
        config.model().policy().empty() ? absl::StatusOr<model::CausalLmConfig>(
                                              absl::NotFoundError("model.policy names no model"))
                                        : model::LoadCausalLmConfig(config.model().policy());
    if (!model.ok()) {
      return Fail("coordinator",
                  absl::FailedPreconditionError(absl::StrCat(
                      "the policy's vocabulary size is unknown (", model.status().message(),
                      "): set coordinator.vocab_size, or make model.policy readable here, so "
                      "that pairs with token ids outside the vocabulary are refused")));
    }
    limits.vocab_size = model->vocab_size;
  }
  BPO_LOG(INFO) << "coordinator: token ids must lie in [0, "
                << (limits.vocab_size > 0 ? absl::StrCat(limits.vocab_size) : "?")
                << "), prompts <= " << limits.prompt_tokens_max
                << " tokens, responses <= " << limits.response_tokens_max
                << " tokens, snapshots under " << limits.snapshot_dir;
  absl::StatusOr<TransportSecurity> transport = TransportFromFlags(config, "coordinator");
  if (!transport.ok()) return Fail("coordinator", transport.status());
  BPO_LOG(INFO) << "coordinator: serving " << transport->Describe()
                << (transport->tokens.empty()
                        ? ""
                        : absl::StrCat(", ", transport->tokens.size(), " bearer tokens accepted"));
  coordinator::CoordinatorServices services(store->get(), rpc_metrics->get(), *transport, limits);
  auto server = StartGrpcServer(listen, services.list(), *transport,
                                config.coordinator().max_message_bytes());
  if (!server.ok()) return Fail("coordinator", server.status());
  std::string metrics_address = absl::GetFlag(FLAGS_metrics_address);
  if (metrics_address.empty()) metrics_address = config.endpoints().metrics();
  auto http_options = MetricsServerOptions(metrics_address, *transport);
  if (!http_options.ok()) return Fail("coordinator", http_options.status());
  auto http = HttpServer::Start(*http_options);
  if (!http.ok()) return Fail("coordinator", http.status());
  ServeMetrics(&registry, http->get());
  const AddressMap bound = {{"grpc", PublishedAddress(listen, server->port)},
                            {"metrics", PublishedAddress((*http)->address(), (*http)->port())}};
  // Once per distinct file (`bpo local` names the same one twice).
  for (const std::string& path :
       std::set<std::string>{endpoint_file, absl::GetFlag(FLAGS_address_file)}) {
    if (path.empty()) continue;
    if (auto s = WriteAddressFile(path, bound); !s.ok()) return Fail("coordinator", s);
  }

  auto status = (*store)->Status();
  if (!status.ok()) return Fail("coordinator", status.status());
  std::cout << "coordinator for run " << config.run_id() << " on port " << server->port
            << ", store " << store_path << " (step " << status->step() << "/"
            << status->total_steps() << "), metrics " << (*http)->Url("/metrics") << "\n"
            << coordinator::FormatRunPlan(*plan) << std::flush;

  absl::Time done_at = absl::InfiniteFuture();
  while (!StopRequested()) {
    absl::SleepFor(absl::Milliseconds(500));
    auto expired = (*store)->ExpireLeases();
    if (!expired.ok()) {
      BPO_LOG(ERROR) << "expiring leases: " << expired.status();
    } else if (*expired > 0) {
      BPO_LOG(INFO) << *expired << " lease(s) expired; their work is back in the queue";
    }
    if (done_at == absl::InfiniteFuture()) {
      auto c = (*store)->Counters();
      if (c.ok() && c->steps_committed >= config.schedule().total_steps()) {
        std::cout << "run " << config.run_id() << " done: " << c->steps_committed
                  << " steps committed, " << c->pairs[coordinator::PairState::kConsumed]
                  << " pairs consumed\n"
                  << std::flush;
        done_at = absl::Now();
      }
    } else if (absl::Now() - done_at > absl::Seconds(absl::GetFlag(FLAGS_linger_seconds))) {
      break;
    }
  }
  server->server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  return kExitOk;
}

}  // namespace

const Command& CoordinatorCommand() {
  static const Command kCommand{
      "coordinator",
      "Serve a run's coordinator: schedule, durable store, work queues.",
      "bpo coordinator --config FILE [--listen HOST:PORT] [--store FILE] [--address_file FILE]",
      __FILE__,
      0,
      0,
      &RunCoordinator,
      {},
      {"config", "metrics_address", "address_file", "tls_ca", "tls_cert", "tls_key"}};
  return kCommand;
}

}  // namespace bpo::cli
