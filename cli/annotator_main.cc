// bpo annotator: labels sampled pairs with a reward model, a rule or human
// raters on a web page; bpo annotator add-rater: issues a rater's secret.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "annotator/annotator.h"
#include "annotator/human_service.h"
#include "annotator/human_tokens.h"
#include "annotator/scorer.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "cli/worker.h"
#include "common/address_file.h"
#include "common/config.h"
#include "common/process_metrics.h"
#include "model/policy.h"

ABSL_FLAG(std::string, kind, "", "rm, rule or human; empty uses annotation.kind of the run.");
ABSL_FLAG(std::string, http, "127.0.0.1:8080",
          "human: serve the rating page here (host:port; port 0 picks one).");
ABSL_FLAG(std::string, raters, "",
          "human: the raters file, one `name <hash of the secret>` line a rater; "
          "`bpo annotator add-rater` writes it.");
ABSL_FLAG(bool, secure_cookies, true,
          "human: mark the session cookie Secure, so browsers send it only over HTTPS or to "
          "localhost; false only behind plain HTTP, where the cookie travels in clear.");

namespace bpo::cli {
namespace {

// The human-annotation web service: one coordinator worker per signed-in rater.
int RunHuman(const bpo::v1::RunConfig& local) {
  annotator::HumanOptions o;
  o.coordinator_address = absl::GetFlag(FLAGS_coordinator);
  if (o.coordinator_address.empty()) o.coordinator_address = local.endpoints().coordinator();
  // An address file (file:PATH) is read once, at start.
  absl::StatusOr<std::string> resolved = ResolveEndpoint(o.coordinator_address);
  if (!resolved.ok()) return Fail("annotator", resolved.status());
  o.coordinator_address = *resolved;
  o.http_address = absl::GetFlag(FLAGS_http);
  o.rpc_deadline = absl::Seconds(local.endpoints().rpc_deadline_seconds());
  o.lease_duration = absl::Seconds(local.annotation().lease_seconds());
  o.seed = local.seeds().global();
  const std::string raters = absl::GetFlag(FLAGS_raters);
  if (raters.empty()) {
    return Fail("annotator", absl::InvalidArgumentError(
                                 "--kind human needs --raters FILE; make one with `bpo annotator "
                                 "add-rater --raters FILE NAME`"));
  }
  auto loaded = annotator::LoadRaters(raters);
  if (!loaded.ok()) return Fail("annotator", loaded.status());
  o.raters = std::move(*loaded);
  const std::string name = absl::GetFlag(FLAGS_name).empty() ? "human" : absl::GetFlag(FLAGS_name);
  absl::StatusOr<TransportSecurity> transport = TransportFromFlags(local, name);
  if (!transport.ok()) return Fail("annotator", transport.status());
  o.transport = *transport;
  o.secure_cookies = absl::GetFlag(FLAGS_secure_cookies);
  metrics::Registry registry;
  registry.AddCollector(metrics::MakeProcessCollector("annotator"));
  auto service = annotator::HumanAnnotationService::Start(o, &registry);
  if (!service.ok()) return Fail("annotator", service.status());
  // The rating page serves /metrics too.
  const std::string dialable = PublishedAddress((*service)->address(), (*service)->port());
  const std::string scheme = o.transport.plaintext ? "http://" : "https://";
  if (auto s =
          PublishAddresses({{"http", absl::StrCat(scheme, dialable, "/")}, {"metrics", dialable}});
      !s.ok()) {
    return Fail("annotator", s);
  }
  std::cout << "human annotation: " << o.raters.size() << " raters sign in at " << (*service)->url()
            << "\n"
            << std::flush;
  while (!StopRequested()) absl::SleepFor(absl::Milliseconds(200));
  (*service)->Stop();
  return kExitOk;
}

int RunAnnotatorCommand(const std::vector<std::string>&) {
  InstallStopHandlers();
  std::string kind = absl::GetFlag(FLAGS_kind);
  if (!kind.empty() && kind != "rm" && kind != "rule" && kind != "human") {
    return Fail("annotator", absl::InvalidArgumentError(absl::StrCat(
                                 "--kind must be rm, rule or human, got '", kind, "'")));
  }
  // Load the local config for defaults; the run's config comes at registration.
  bpo::v1::WorkerInfo info;
  info.set_kind(bpo::v1::WORKER_KIND_ANNOTATOR);
  info.set_name(DefaultWorkerName("annotator"));
  // The kind and (for rm) the model must be known before registering.
  const std::string path = absl::GetFlag(FLAGS_config);
  auto local = path.empty() ? DefaultRunConfig() : LoadRunConfig(path);
  if (!local.ok()) return Fail("annotator", local.status());
  if (kind.empty()) {
    kind = local->config.annotation().kind() == bpo::v1::AnnotationConfig::RM     ? "rm"
           : local->config.annotation().kind() == bpo::v1::AnnotationConfig::RULE ? "rule"
                                                                                  : "human";
  }
  if (kind == "human") return RunHuman(local->config);
  std::unique_ptr<annotator::Scorer> scorer;
  if (kind == "rm") {
    std::string dir = absl::GetFlag(FLAGS_reward_model);
    if (dir.empty()) dir = local->config.model().reward_model();
    if (dir.empty())
      return Fail("annotator", absl::InvalidArgumentError("model.reward_model names no model"));
    auto load = model::ProcessLoadOptions(
        local->config.model().dtype() == bpo::v1::ModelConfig::BFLOAT16 ? "bfloat16" : "float32",
        local->config.model().device());
    if (!load.ok()) return Fail("annotator", load.status());
    auto rm =
        annotator::MakeRewardModelScorer(dir, *load, local->config.annotation().rm_max_length(),
                                         local->config.annotation().pairs_per_lease());
    if (!rm.ok()) return Fail("annotator", rm.status());
    scorer = std::move(*rm);
  } else {
    auto rule = annotator::MakeRuleScorer(local->config.annotation().rule());
    if (!rule.ok()) return Fail("annotator", rule.status());
    scorer = std::move(*rule);
  }
  info.set_annotator_kind(scorer->kind());
  info.set_model_sha256(scorer->model_sha256());
  auto worker = ConnectWorker(info);
  if (!worker.ok()) return Fail("annotator", worker.status());
  const bpo::v1::RunConfig& config = worker->config;
  metrics::Registry registry;
  registry.AddCollector(metrics::MakeProcessCollector("annotator"));
  auto server = StartWorkerMetrics(*worker, &registry);
  if (!server.ok()) return Fail("annotator", server.status());
  std::cout << "annotator " << worker->client->worker_id() << " (" << scorer->provenance()
            << ") labelling for run " << worker->run_id << "; metrics "
            << (*server)->Url("/metrics") << "\n"
            << std::flush;
  annotator::AnnotatorOptions options;
  options.pairs_per_lease = config.annotation().pairs_per_lease();
  options.lease = absl::Seconds(config.annotation().lease_seconds());
  options.stop = [] { return StopRequested(); };
  if (absl::Status s =
          annotator::RunAnnotator(scorer.get(), worker->client.get(), options, &registry);
      !s.ok()) {
    return Fail("annotator", s);
  }
  std::cout << "annotator " << worker->client->worker_id() << ": run done\n";
  return kExitOk;
}

// Adds a rater with a new secret. The secret goes to stdout once (and to no
// log); the file keeps only its hash.
int RunAddRaterCommand(const std::vector<std::string>& args) {
  const std::string path = absl::GetFlag(FLAGS_raters);
  if (path.empty()) {
    return Fail("annotator add-rater", absl::InvalidArgumentError("give --raters FILE"));
  }
  auto secret = annotator::AddRater(path, args[0]);
  if (!secret.ok()) return Fail("annotator add-rater", secret.status());
  std::cerr << "added rater '" << args[0] << "' to " << path
            << "; hand them the secret below. It is shown only now and stored nowhere (the file "
               "keeps its hash).\n";
  std::cout << *secret << "\n" << std::flush;
  return kExitOk;
}

}  // namespace

const Command& AnnotatorCommand() {
  static const Command kCommand{
      "annotator",
      "Label sampled pairs: reward model (rm), rule, or human web service.",
      "bpo annotator [--kind rm|rule|human] [--coordinator HOST:PORT] [--config FILE]",
      __FILE__,
      0,
      0,
      &RunAnnotatorCommand,
      // --http, --raters, --secure_cookies: kind human only.
      {"kind", "http", "raters", "secure_cookies"},
      {"config", "metrics_address", "address_file", "coordinator", "name", "reward_model", "tls_ca",
       "tls_cert", "tls_key"}};
  return kCommand;
}

const Command& AddRaterCommand() {
  static const Command kCommand{"annotator add-rater",
                                "Add a rater to a raters file and print their new secret once.",
                                "bpo annotator add-rater --raters FILE NAME",
                                __FILE__,
                                1,
                                1,
                                &RunAddRaterCommand,
                                {"raters"}};
  return kCommand;
}

}  // namespace bpo::cli
