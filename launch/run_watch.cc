#include "launch/run_watch.h"

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/address_file.h"
#include "common/config.h"
#include "common/status_macros.h"
#include "common/transport.h"
#include "coordinator/client.h"
#include "launch/progress.h"

namespace bpo::launch {

std::vector<std::string> RunProcessNames(const bpo::v1::RunConfig& config) {
  std::vector<std::string> names = {"coordinator"};
  for (int r = 0; r < config.learner().world_size(); ++r)
    names.push_back(absl::StrCat("learner-", r));
  for (int i = 0; i < config.launch().actors(); ++i) names.push_back(absl::StrCat("actor-", i));
  if (config.annotation().kind() == bpo::v1::AnnotationConfig::HUMAN) {
    names.push_back("human");
  } else {
    for (int i = 0; i < config.launch().annotators(); ++i) {
      names.push_back(absl::StrCat("annotator-", i));
    }
  }
  return names;
}

absl::StatusOr<int> WatchRun(const WatchOptions& options) {
  const bpo::v1::RunConfig& config = options.config;
  std::ostream& out = *options.out;
  BPO_ASSIGN_OR_RETURN(const std::string run_dir, RunPath(config));
  BPO_ASSIGN_OR_RETURN(const TransportSecurity transport, config.security().plaintext()
                                                              ? TransportSecurity::Plaintext()
                                                              : LoadTransport(config, "launcher"));
  const std::string addresses = run_dir + "/addresses";
  const std::string scheme = transport.plaintext ? "http://" : "https://";
  MetricsTargets targets({.processes = RunProcessNames(config),
                          .addresses_dir = addresses,
                          .path = run_dir + "/prometheus-targets.json",
                          .run_id = config.run_id(),
                          .extra_labels = options.target_labels});
  out << "bpo deploy watch: run " << config.run_id() << "; Prometheus targets in " << run_dir
      << "/prometheus-targets.json\n"
      << std::flush;

  std::unique_ptr<coordinator::CoordinatorClient> client;
  std::unique_ptr<ProgressReporter> progress;
  bool rating_page_said = false;
  absl::Time next_check = absl::InfinitePast();
  while (!(options.stop_requested && options.stop_requested())) {
    std::vector<ScrapeTarget> changed;
    if (absl::Status s = targets.Refresh(&changed); !s.ok()) {
      out << "bpo deploy watch: " << s << "\n";
    }
    for (const ScrapeTarget& t : changed) {
      out << "  " << t.process << " metrics " << scheme << t.address << "/metrics\n";
    }
    if (!rating_page_said) {
      absl::StatusOr<std::string> page =
          ResolveEndpoint(absl::StrCat("file:", addresses, "/human.json"), "http");
      if (page.ok()) {
        out << "  human rating page " << *page << "\n";
        rating_page_said = true;
      }
    }
    out << std::flush;
    if (client == nullptr) {
      coordinator::ClientOptions co;
      co.address = config.endpoints().coordinator();
      co.rpc_deadline = absl::Seconds(5);
      co.retry_for = absl::Seconds(1);
      co.transport = transport;
      absl::StatusOr<std::unique_ptr<coordinator::CoordinatorClient>> connected =
          coordinator::CoordinatorClient::Connect(co);
      if (connected.ok()) {
        client = std::move(*connected);
        progress =
            std::make_unique<ProgressReporter>(client.get(), &out, false, options.report_every);
      }
    }
    if (progress != nullptr) progress->MaybeReport();
    if (client != nullptr && absl::Now() >= next_check) {
      next_check = absl::Now() + absl::Seconds(2);
      absl::StatusOr<bpo::v1::RunStatus> status = client->Status();
      std::error_code ec;
      if (status.ok() && status->total_steps() > 0 && status->step() >= status->total_steps() &&
          std::filesystem::exists(run_dir + "/adapter/adapter_model.safetensors", ec)) {
        targets.Refresh().IgnoreError();
        out << "bpo deploy watch: run " << config.run_id() << " finished: " << status->step() << "/"
            << status->total_steps() << " steps, " << status->pairs_consumed()
            << " pairs consumed; adapter in " << run_dir << "/adapter\n"
            << std::flush;
        return 0;
      }
    }
    absl::SleepFor(absl::Seconds(1));
  }
  return 130;
}

}  // namespace bpo::launch
