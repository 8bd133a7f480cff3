// bpo learner: trains the LoRA ensemble. Online mode (the default) takes its
// batches from the coordinator and publishes the behavior snapshots it asks
// for; offline mode (--pairs) trains from a static preference file, which is
// also the offline-DPO baseline (F = 1).
#include <chrono>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <optional>
#include <random>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "cli/worker.h"
#include "common/endpoint.h"
#include "coordinator/client.h"
#include "common/config.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "common/process_metrics.h"
#include "learner/checkpoint.h"
#include "learner/collective.h"
#include "learner/learner_metrics.h"
#include "learner/pairs.h"
#include "learner/snapshot.h"
#include "learner/snapshot_service.h"
#include "common/rpc.h"
#include "learner/trainer.h"
#include "model/policy.h"

ABSL_FLAG(std::string, output, "", "Output directory; overrides output_dir (run files go to "
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

namespace fs = std::filesystem;

int Fail(const absl::Status& s) {
  std::cerr << "bpo learner: " << s.message() << "\n";
  return kExitFailure;
}

learner::TrainerOptions TrainerOptionsFrom(const bpo::v1::RunConfig& c) {
  learner::TrainerOptions o;
  switch (c.loss().type()) {
    case v1::LossConfig::DPO: o.loss.type = learner::LossType::kDpo; break;
    case v1::LossConfig::IPO: o.loss.type = learner::LossType::kIpo; break;
    case v1::LossConfig::SLIC: o.loss.type = learner::LossType::kSlic; break;
  }
  o.loss.beta = c.loss().beta();
  o.loss.label_smoothing = c.loss().label_smoothing();
  switch (c.loss().logprob_reduction()) {
    case v1::LossConfig::AUTO:
      o.reduction = c.loss().type() == v1::LossConfig::IPO ? learner::Reduction::kMean
                                                           : learner::Reduction::kSum;
      break;
    case v1::LossConfig::SUM: o.reduction = learner::Reduction::kSum; break;
    case v1::LossConfig::MEAN: o.reduction = learner::Reduction::kMean; break;
  }
  switch (c.reference().mode()) {
    case v1::ReferenceConfig::BEHAVIOR: o.reference = learner::ReferenceMode::kBehavior; break;
    case v1::ReferenceConfig::SFT: o.reference = learner::ReferenceMode::kSft; break;
    case v1::ReferenceConfig::EMA: o.reference = learner::ReferenceMode::kEma; break;
    case v1::ReferenceConfig::STATIC: o.reference = learner::ReferenceMode::kStatic; break;
  }
  o.behavior_logps_from_actor = c.reference().logprob_source() == v1::ReferenceConfig::ACTOR;
  o.ema_rate = c.reference().ema_rate();
  o.merge_mode = c.lora().merge_mode() == v1::LoraConfig::MEAN_DELTA ? model::MergeMode::kMeanDelta
                                                                     : model::MergeMode::kPeftLinear;
  o.adam = {c.optimizer().adam_beta1(), c.optimizer().adam_beta2(), c.optimizer().adam_eps(),
            c.optimizer().weight_decay()};
  o.learning_rate = c.optimizer().learning_rate();
  o.grad_clip = c.optimizer().grad_clip();
  o.total_steps = c.schedule().total_steps();
  o.warmup_steps = c.optimizer().warmup_steps();
  return o;
}

int RunLearner(const std::vector<std::string>&) {
  InstallStopHandlers();
  const bool online = absl::GetFlag(FLAGS_pairs).empty();
  const int rank = absl::GetFlag(FLAGS_rank);
  bpo::v1::RunConfig config;
  // Online: the run's config comes from the coordinator.
  std::optional<Worker> worker;
  if (online) {
    bpo::v1::WorkerInfo info;
    info.set_kind(bpo::v1::WORKER_KIND_LEARNER);
    info.set_name(absl::StrCat("learner-", rank));
    info.set_rank(rank);
    const std::string config_path = absl::GetFlag(FLAGS_config);
    auto local = config_path.empty() ? DefaultRunConfig() : LoadRunConfig(config_path);
    if (!local.ok()) return Fail(local.status());
    info.set_world_size(local->config.learner().world_size());
    auto connected = ConnectWorker(info);
    if (!connected.ok()) return Fail(connected.status());
    worker = std::move(*connected);
    config = worker->config;
    // Addresses are this machine's to choose.
    *config.mutable_endpoints() = local->config.endpoints();
  } else {
    const std::string config_path = absl::GetFlag(FLAGS_config);
    absl::StatusOr<RunConfigFile> file =
        config_path.empty() ? DefaultRunConfig() : LoadRunConfig(config_path);
    if (!file.ok()) return Fail(file.status());
    config = file->config;
  }
  if (!absl::GetFlag(FLAGS_policy).empty()) config.mutable_model()->set_policy(absl::GetFlag(FLAGS_policy));
  if (!absl::GetFlag(FLAGS_output).empty()) config.set_output_dir(absl::GetFlag(FLAGS_output));
  if (config.model().policy().empty()) {
    return Fail(absl::InvalidArgumentError("model.policy (or --policy) names no model directory"));
  }
  learner::TrainerOptions options = TrainerOptionsFrom(config);

  auto load = model::ParseLoadOptions(
      config.model().dtype() == v1::ModelConfig::BFLOAT16 ? "bfloat16" : "float32",
      config.model().device());
  if (!load.ok()) return Fail(load.status());
  model::PolicyOptions policy_options;
  policy_options.load = *load;
  policy_options.tokenizer = config.model().tokenizer();
  if (!fs::exists(policy_options.tokenizer)) policy_options.tokenizer.clear();
  auto policy = model::LoadPolicy(config.model().policy(), policy_options);
  if (!policy.ok()) return Fail(policy.status());

  model::LoraOptions lo;
  lo.members = config.lora().members();
  lo.rank = config.lora().rank();
  lo.alpha = config.lora().alpha();
  lo.dropout = config.lora().dropout();
  lo.target_modules.assign(config.lora().target_modules().begin(), config.lora().target_modules().end());
  lo.seed = config.seeds().lora_init();
  auto lora = model::LoraEnsemble::Create(*policy->model, lo);
  if (!lora.ok()) return Fail(lora.status());

  const int64_t T = config.schedule().total_steps(), B = config.schedule().batch_size();
  std::vector<learner::TextPair> pairs;
  std::vector<size_t> order;
  if (!online) {
    auto read = learner::ReadPairsJsonl(absl::GetFlag(FLAGS_pairs));
    if (!read.ok()) return Fail(read.status());
    pairs = std::move(*read);
    if (static_cast<int64_t>(pairs.size()) < T * B) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          absl::GetFlag(FLAGS_pairs), ": has ", pairs.size(), " pairs; T*B = ", T, "*", B, " = ",
          T * B, " are needed (each pair is used once)")));
    }
    order.resize(pairs.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(config.seeds().prompts()));
  }

  const int world = config.learner().world_size();
  if (rank < 0 || rank >= world) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--rank ", rank, " is outside learner.world_size = ", world)));
  }
  const std::string run_dir = absl::StrCat(config.output_dir(), "/", config.run_id());
  std::unique_ptr<learner::Collective> collective;
  if (world > 1) {
    learner::CollectiveOptions co;
    co.rank = rank;
    co.world_size = world;
    // Ranks meet once per launch: a resumed launch starts from another step.
    auto latest = learner::LatestCheckpoint(run_dir + "/checkpoints");
    co.run_id = absl::StrCat(config.run_id(), "-from-",
                             latest.ok() && absl::GetFlag(FLAGS_resume)
                                 ? fs::path(*latest).filename().string()
                                 : "start");
    co.rendezvous = absl::GetFlag(FLAGS_rendezvous);
    if (co.rendezvous.empty()) {
      fs::create_directories(run_dir + "/rendezvous");
      co.rendezvous = "file:" + run_dir + "/rendezvous";
    }
    auto backend = learner::ParseBackend(
        config.learner().backend() == v1::LearnerConfig::NCCL   ? "nccl"
        : config.learner().backend() == v1::LearnerConfig::GLOO ? "gloo"
                                                                 : "auto");
    if (!backend.ok()) return Fail(backend.status());
    auto c = learner::CreateCollective(co, *backend);
    if (!c.ok()) return Fail(c.status());
    collective = std::move(*c);
    options.collective = collective.get();
  }
  // Dropout draws from the default generator: seeded per rank, and saved in
  // checkpoints.
  at::manual_seed(config.seeds().global() + static_cast<uint64_t>(rank));
  learner::EnsembleTrainer trainer(policy->model.get(), lora->get(), options);
  // Offline: every pair was sampled by the initial (SFT) policy, snapshot 0.
  // Online: snapshot p is taken at step p*K, before that step.
  if (!online) trainer.SetBehaviorSnapshot(0, (*lora)->Merge(options.merge_mode));
  if (options.reference == learner::ReferenceMode::kStatic && !config.reference().static_adapter().empty()) {
    auto fixed = model::LoraEnsemble::LoadPeft(*policy->model, {config.reference().static_adapter()});
    if (!fixed.ok()) return Fail(fixed.status());
    trainer.SetStaticReference((*fixed)->Merge(options.merge_mode));
  }

  const std::string ckpt_dir = run_dir + "/checkpoints";
  std::error_code ec;
  fs::create_directories(ckpt_dir, ec);
  if (ec) return Fail(absl::PermissionDeniedError(absl::StrCat(ckpt_dir, ": ", ec.message())));
  auto signature = learner::ModelSignature(config.model().policy());
  if (!signature.ok()) return Fail(signature.status());
  learner::CheckpointMeta meta{config.run_id(), *signature, 0, config.seeds().prompts()};
  if (absl::GetFlag(FLAGS_resume)) {
    auto latest = learner::LatestCheckpoint(ckpt_dir);
    if (latest.ok()) {
      auto restored = learner::LoadCheckpoint(*latest, rank, meta, trainer, **lora);
      if (!restored.ok()) return Fail(restored.status());
      for (auto& [v, adapter] : restored->behavior) trainer.SetBehaviorSnapshot(v, std::move(adapter));
      BPO_LOG(INFO) << "resumed from " << *latest << " at step " << restored->step;
    }
  }

  metrics::Registry registry;
  registry.AddCollector(metrics::MakeProcessCollector("learner"));
  auto lm = learner::LearnerMetrics::Create(&registry, lo.members);
  if (!lm.ok()) return Fail(lm.status());
  std::string address = absl::GetFlag(FLAGS_metrics_address);
  if (address.empty()) address = config.endpoints().metrics();
  if (online && rank > 0 && absl::GetFlag(FLAGS_metrics_address).empty()) {
    // Ranks on one host cannot share a port: others pick a free one.
    auto ep = ParseEndpoint(address);
    if (ep.ok()) address = absl::StrCat(ep->host, ":0");
  }
  auto server = HttpServer::Start({address});
  if (!server.ok()) return Fail(server.status());
  ServeMetrics(&registry, server->get());
  auto log = learner::StepLog::Open(
      rank == 0 ? run_dir + "/steps.jsonl" : absl::StrCat(run_dir, "/steps.rank", rank, ".jsonl"));
  if (!log.ok()) return Fail(log.status());

  // Snapshot publishing (rank 0). Offline: version steps / snapshot_every.
  // Online: version p at step p*K, when the coordinator asks; the payloads
  // also go to a directory so that a restarted learner serves them again.
  const int64_t snapshot_every = absl::GetFlag(FLAGS_snapshot_every);
  const int64_t K = config.schedule().total_steps() / config.schedule().phases();
  std::unique_ptr<learner::SnapshotStore> store;
  std::unique_ptr<learner::SnapshotServiceImpl> snapshot_service;
  GrpcServer snapshot_server;
  std::string serve_address;
  double time_train = 0, time_wait = 0, time_publish = 0;
  const auto loop_start = std::chrono::steady_clock::now();
  auto publish = [&](uint64_t version) -> absl::StatusOr<bpo::v1::SnapshotInfo> {
    const auto t0 = std::chrono::steady_clock::now();
    auto bytes = learner::EncodeSnapshot(**lora, options.merge_mode, /*include_members=*/false,
                                         version, trainer.steps_done());
    if (!bytes.ok()) return bytes.status();
    auto info = store->Publish(version, trainer.steps_done(), std::move(*bytes));
    if (!info.ok()) return info.status();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    lm->RecordPublish(ms / 1000, info->size_bytes());
    time_publish += ms / 1000;
    std::cout << absl::StrFormat("snapshot v%d at step %d: %d bytes, sha256 %s…, published in %.1f ms\n",
                                 version, trainer.steps_done(), info->size_bytes(),
                                 info->sha256().substr(0, 12), ms)
              << std::flush;
    return *info;
  };
  if ((snapshot_every > 0 || online) && rank == 0) {
    learner::SnapshotStoreOptions so;
    so.shared_dir = config.learner().snapshot_dir();
    if (so.shared_dir.empty() && online) so.shared_dir = run_dir + "/snapshots";
    so.keep_versions = std::max(4, config.schedule().max_staleness() + 2);
    store = std::make_unique<learner::SnapshotStore>(so);
    snapshot_service = std::make_unique<learner::SnapshotServiceImpl>(store.get());
    auto started = StartGrpcServer(config.endpoints().snapshots(), {snapshot_service.get()});
    if (!started.ok()) return Fail(started.status());
    snapshot_server = std::move(*started);
    auto ep = ParseEndpoint(config.endpoints().snapshots());
    std::string host = ep.ok() ? ep->host : "127.0.0.1";
    if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
    serve_address = absl::StrCat(host, ":", snapshot_server.port);
    if (online) {
      // Serve what an earlier run of this learner published, and tell the
      // coordinator where it is now.
      auto republished = learner::RepublishSnapshots(store.get(), *policy->model);
      if (!republished.ok()) return Fail(republished.status());
      for (const auto& info : *republished) {
        bpo::v1::ReportSnapshotRequest report;
        *report.mutable_snapshot() = info;
        report.set_serve_address(serve_address);
        report.set_path(learner::SnapshotStore::PayloadPath(so.shared_dir, info.version()));
        if (auto s = worker->client->ReportSnapshot(report); !s.ok()) {
          BPO_LOG(WARNING) << "re-reporting snapshot v" << info.version() << ": " << s;
        }
      }
    } else if (trainer.steps_done() % snapshot_every == 0) {
      auto info = publish(static_cast<uint64_t>(trainer.steps_done() / snapshot_every));
      if (!info.ok()) return Fail(info.status());
    }
  }

  const int64_t every = config.learner().checkpoint_every();
  const int64_t limit = absl::GetFlag(FLAGS_max_steps);
  int64_t taken = 0;
  const int64_t max_prompt = absl::GetFlag(FLAGS_max_prompt_tokens);
  const int64_t max_response = config.sampling().max_new_tokens();
  const int64_t keep_versions =
      config.schedule().mode() == bpo::v1::ScheduleConfig::ASYNC ? config.schedule().max_staleness() : 0;
  while (trainer.steps_done() < T && (limit == 0 || taken < limit)) {
    const int64_t t = trainer.steps_done();
    learner::PairBatch batch;
    if (online) {
      if (StopRequested()) return Fail(absl::CancelledError("stopped by a signal"));
      const auto wait0 = std::chrono::steady_clock::now();
      auto fetched = worker->client->FetchBatch(t, rank, world);
      if (!fetched.ok()) return Fail(fetched.status());
      if (fetched->done()) break;
      if (fetched->publish_snapshot()) {
        auto info = publish(fetched->publish_version());
        if (!info.ok()) return Fail(info.status());
        bpo::v1::ReportSnapshotRequest report;
        *report.mutable_snapshot() = *info;
        report.set_serve_address(serve_address);
        report.set_path(learner::SnapshotStore::PayloadPath(store->options().shared_dir, info->version()));
        if (auto s = worker->client->ReportSnapshot(report); !s.ok()) return Fail(s);
        continue;
      }
      if (fetched->pairs().empty()) {
        coordinator::SleepRetryAfter(fetched->retry_after());
        const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - wait0).count();
        lm->RecordWait(waited);
        time_wait += waited;
        continue;
      }
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - wait0).count();
      lm->RecordWait(waited);
      time_wait += waited;
      // The behavior policy of phase p is the ensemble at step p*K.
      const uint64_t phase = static_cast<uint64_t>(t / K);
      if (t % K == 0 && !trainer.behavior_snapshots().count(phase)) {
        trainer.SetBehaviorSnapshot(phase, (*lora)->Merge(options.merge_mode));
      }
      std::vector<bpo::v1::AnnotatedPair> annotated(fetched->pairs().begin(), fetched->pairs().end());
      auto built = learner::BatchFromAnnotated(annotated, policy->tokenizer->pad_id(), max_prompt);
      if (!built.ok()) return Fail(built.status());
      batch = std::move(*built);
    } else {
      // This rank's B/R pairs of the global batch.
      std::vector<learner::TextPair> batch_pairs;
      const int64_t per_rank = B / world;
      for (int64_t i = rank * per_rank; i < (rank + 1) * per_rank; ++i) {
        batch_pairs.push_back(pairs[order[t * B + i]]);
      }
      batch = learner::TokenizePairs(*policy->tokenizer, batch_pairs, max_prompt, max_response, 0);
    }
    auto m = trainer.Step(batch);
    if (!m.ok()) return Fail(m.status());
    time_train += m->seconds;
    ++taken;
    lm->Record(*m);
    if (auto s = log->Append(*m); !s.ok()) return Fail(s);
    if (rank == 0) std::cout << absl::StrFormat("step %d/%d  loss %.4f  margin %.4f  acc %.2f  kl_ref %.4f  lr %.2e  %.2f pairs/s\n",
                                 t + 1, T, m->loss, m->margin, m->accuracy, m->kl_reference,
                                 m->learning_rate, m->pairs_per_second)
              << std::flush;
    if (online) {
      const int64_t phase = t / K;
      if (phase - keep_versions > 0) {
        trainer.DropBehaviorSnapshotsBefore(static_cast<uint64_t>(phase - keep_versions));
      }
      if (rank == 0) {
        bpo::v1::CommitStepRequest commit;
        commit.set_step(t);
        auto& mm = *commit.mutable_metrics();
        mm["loss"] = m->loss;
        mm["margin"] = m->margin;
        mm["accuracy"] = m->accuracy;
        mm["kl_reference"] = m->kl_reference;
        mm["kl_sft"] = m->kl_sft;
        mm["learning_rate"] = m->learning_rate;
        mm["seconds"] = m->seconds;
        auto committed = worker->client->CommitStep(commit);
        if (!committed.ok()) return Fail(committed.status());
      }
    } else if (store != nullptr && trainer.steps_done() % snapshot_every == 0) {
      auto info = publish(static_cast<uint64_t>(trainer.steps_done() / snapshot_every));
      if (!info.ok()) return Fail(info.status());
    }
    const bool last = trainer.steps_done() == T;
    if ((every > 0 && trainer.steps_done() % every == 0) || last || (limit > 0 && taken == limit)) {
      if (auto s = learner::SaveCheckpoint(ckpt_dir, rank, world, meta, trainer, **lora,
                                           trainer.behavior_snapshots());
          !s.ok()) {
        return Fail(s);
      }
      if (world > 1) {
        // Every rank's part is durable before rank 0 marks the checkpoint complete.
        if (auto s = collective->Barrier(); !s.ok()) return Fail(s);
        if (rank == 0) {
          if (auto s = learner::MarkComplete(absl::StrCat(ckpt_dir, "/step-", trainer.steps_done()));
              !s.ok()) {
            return Fail(s);
          }
        }
      }
    }
  }
  if (online) {
    // The run's own account of where this rank's time went.
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
    std::cout << absl::StrFormat(
                     "rank %d time: %.2f s wall, %.2f s training (%.0f%%), %.2f s fetching batches "
                     "and waiting for them (%.0f%%), %.2f s publishing snapshots, %.2f s other "
                     "(commits, checkpoints)\n",
                     rank, wall, time_train, 100 * time_train / std::max(wall, 1e-9), time_wait,
                     100 * time_wait / std::max(wall, 1e-9), time_publish,
                     wall - time_train - time_wait - time_publish)
              << std::flush;
  }
  if (trainer.steps_done() == T && rank == 0) {
    if (auto s = (*lora)->ExportMergedPeft(options.merge_mode, run_dir + "/adapter", *policy->model); !s.ok()) {
      return Fail(s);
    }
    for (int i = 0; i < (*lora)->members(); ++i) {
      if (auto s = (*lora)->SavePeft(i, absl::StrCat(run_dir, "/members/member", i), *policy->model);
          !s.ok()) {
        return Fail(s);
      }
    }
    std::cout << "trained " << T << " steps; merged adapter (" << model::MergeModeName(options.merge_mode)
              << ", PEFT format) in " << run_dir << "/adapter\n";
  }
  return kExitOk;
}

}  // namespace

const Command& LearnerCommand() {
  static const Command kCommand{
      "learner", "Train the LoRA ensemble on the coordinator's batches (or offline: --pairs).",
      "bpo learner --config FILE [--coordinator HOST:PORT] [--rank R] | --pairs FILE.jsonl",
      __FILE__, 0, 0, &RunLearner, {},
      {"config", "pairs", "metrics_address", "coordinator", "name", "policy", "max_prompt_tokens"}};
  return kCommand;
}

}  // namespace bpo::cli
