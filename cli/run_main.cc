// bpo run: the main job on a config (or the built-in defaults).
//
// It validates the config, checks the tensor runtime and prints Algorithm 1's
// schedule; when the config names a policy and prompts, it then carries the
// run out on this machine with `bpo local` (coordinator, actors, annotators,
// learner ranks as separate processes).
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "common/config.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/process_metrics.h"
#include "coordinator/run_plan.h"
#include "launch/local_run.h"
#include "model/runtime.h"

ABSL_FLAG(double, serve_seconds, 0, "Keep serving /metrics this long before exiting.");

namespace bpo::cli {
namespace {

int Run(const std::vector<std::string>&) {
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<RunConfigFile> file = path.empty() ? DefaultRunConfig() : LoadRunConfig(path);
  if (!file.ok()) {
    std::cerr << file.status().message() << "\nbpo run: invalid config\n";
    return kExitFailure;
  }
  const auto& config = file->config;
  BPO_LOG(INFO) << "run " << config.run_id() << " from " << file->source << ", effective config:\n"
                << FormatRunConfigYaml(config);
  auto plan = coordinator::MakeRunPlan(config);
  if (!plan.ok()) return Fail("run", plan.status());

  metrics::Registry registry;
  registry.AddCollector(metrics::MakeProcessCollector("run"));
  auto* schedule =
      registry
          .AddGauge("bpo_run_schedule", "Algorithm 1 schedule of the run.", {"run_id", "quantity"})
          .value();
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"total_steps", plan->total_steps},
        {"phases", plan->phases},
        {"steps_per_phase", plan->steps_per_phase},
        {"batch_size", plan->batch_size},
        {"pairs_per_phase", plan->pairs_per_phase}}) {
    schedule->Add({{"run_id", config.run_id()}, {"quantity", name}}).Set(value);
  }
  std::string address = absl::GetFlag(FLAGS_metrics_address);
  if (address.empty()) address = config.endpoints().metrics();
  // The run's certificates, which `bpo local` uses next.
  auto transport = launch::PrepareLocalTransport(config);
  if (!transport.ok()) return Fail("run", transport.status());
  auto http_options = MetricsServerOptions(address, *transport);
  if (!http_options.ok()) return Fail("run", http_options.status());
  auto server = HttpServer::Start(*http_options);
  if (!server.ok()) return Fail("run", server.status());
  ServeMetrics(&registry, server->get());
  BPO_LOG(INFO) << "serving metrics at " << (*server)->Url("/metrics");

  const model::RuntimeInfo rt = model::GetRuntimeInfo();
  auto gflops = model::MeasureMatmulGflops(512, 5);
  std::cout << "run " << config.run_id() << " (" << file->source << ")\n"
            << coordinator::FormatRunPlan(*plan)
            << absl::StrFormat("libtorch %s, %d threads, %s, matmul 512^2 %.1f GFLOP/s\n",
                               rt.libtorch_version, rt.intra_op_threads,
                               rt.cuda_available ? "CUDA available" : "CPU only",
                               gflops.ok() ? *gflops : 0.0)
            << "metrics: " << (*server)->Url("/metrics") << "\n";
  const double hold = absl::GetFlag(FLAGS_serve_seconds);
  if (hold > 0) absl::SleepFor(absl::Seconds(hold));
  if (path.empty() || config.model().policy().empty() || config.data().prompts().empty()) {
    std::cout << "nothing to run: the config names no model.policy or data.prompts. "
                 "Try: bpo run --config configs/local-tiny.yaml\n";
    return kExitOk;
  }
  std::cout << "starting the run: bpo local --config " << path << "\n" << std::flush;
  server->reset();
  const std::string config_flag = "--config=" + path;
  char* argv[] = {const_cast<char*>("bpo"), const_cast<char*>("local"),
                  const_cast<char*>(config_flag.c_str()), nullptr};
  execv("/proc/self/exe", argv);
  std::cerr << "bpo run: cannot start bpo local: " << strerror(errno) << "\n";
  return kExitFailure;
}

}  // namespace

const Command& RunCommand() {
  static const Command kCommand{
      "run",
      "Run the main job on a config: validate, plan, then run it with `bpo local`.",
      "bpo run [--config=FILE] [--metrics_address=HOST:PORT] [--serve_seconds=S]",
      __FILE__,
      0,
      0,
      &Run,
      {},
      {"config", "metrics_address"}};
  return kCommand;
}

}  // namespace bpo::cli
