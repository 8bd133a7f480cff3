// bpo actor: samples response pairs from the run's current behavior snapshot.
#include <filesystem>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "actor/actor.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "cli/worker.h"
#include "common/config.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "common/process_metrics.h"
#include "model/policy.h"

namespace bpo::cli {
namespace {

namespace fs = std::filesystem;

int RunActor(const std::vector<std::string>&) {
  InstallStopHandlers();
  bpo::v1::WorkerInfo info;
  info.set_kind(bpo::v1::WORKER_KIND_ACTOR);
  info.set_name(DefaultWorkerName("actor"));
  // The policy's signature first, so that the coordinator can refuse a
  // worker that loaded another model than the run's other actors.
  std::string policy_dir = absl::GetFlag(FLAGS_policy);
  auto worker = ConnectWorker(info);
  if (!worker.ok()) return Fail("actor", worker.status());
  bpo::v1::RunConfig config = worker->config;
  if (policy_dir.empty()) policy_dir = config.model().policy();
  if (policy_dir.empty())
    return Fail("actor", absl::InvalidArgumentError("model.policy names no model"));

  auto load = model::ProcessLoadOptions(
      config.model().dtype() == bpo::v1::ModelConfig::BFLOAT16 ? "bfloat16" : "float32",
      config.model().device());
  if (!load.ok()) return Fail("actor", load.status());
  model::PolicyOptions po;
  po.load = *load;
  po.tokenizer = config.model().tokenizer();
  if (!fs::exists(po.tokenizer)) po.tokenizer.clear();
  auto policy = model::LoadPolicy(policy_dir, po);
  if (!policy.ok()) return Fail("actor", policy.status());

  metrics::Registry registry;
  registry.AddCollector(metrics::MakeProcessCollector("actor"));
  auto server = StartWorkerMetrics(*worker, &registry);
  if (!server.ok()) return Fail("actor", server.status());

  actor::ActorOptions options;
  options.run_id = worker->run_id;
  options.prompts_per_lease = config.sampling().prompts_per_lease();
  // One seed for every actor: a pair's random state depends on the pair and
  // the snapshot, never on which actor sampled it (see SamplePairs).
  options.sampler = actor::SamplerOptionsFrom(config.sampling(), config.seeds().sampling());
  options.sampler.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  auto cache_dir = RunPath(config, "snapshot-cache");
  if (!cache_dir.ok()) return Fail("actor", cache_dir.status());
  options.snapshot_cache_dir = *cache_dir;
  options.rpc_deadline = absl::Seconds(config.endpoints().rpc_deadline_seconds());
  options.transport = worker->transport;
  options.snapshot_bytes_max = config.coordinator().snapshot_bytes_max();
  options.stop = [] { return StopRequested(); };
  auto a = actor::Actor::Create(&*policy, worker->client.get(), options, &registry);
  if (!a.ok()) return Fail("actor", a.status());
  std::cout << "actor " << worker->client->worker_id() << " sampling for run " << worker->run_id
            << " with " << policy_dir << "; metrics " << (*server)->Url("/metrics") << "\n"
            << std::flush;
  if (absl::Status s = (*a)->Run(); !s.ok()) return Fail("actor", s);
  std::cout << "actor " << worker->client->worker_id() << ": run done\n";
  return kExitOk;
}

}  // namespace

const Command& ActorCommand() {
  static const Command kCommand{"actor",
                                "Sample response pairs from the run's behavior snapshots.",
                                "bpo actor [--coordinator HOST:PORT] [--config FILE] [--name NAME]",
                                __FILE__,
                                0,
                                0,
                                &RunActor,
                                {},
                                {"config", "metrics_address", "address_file", "coordinator", "name",
                                 "policy", "max_prompt_tokens", "tls_ca", "tls_cert", "tls_key"}};
  return kCommand;
}

}  // namespace bpo::cli
