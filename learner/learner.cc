#include "learner/learner.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/address_file.h"
#include "common/config.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace bpo::learner {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

TrainerOptions TrainerOptionsFromConfig(const bpo::v1::RunConfig& c) {
  TrainerOptions o;
  switch (c.loss().type()) {
    case v1::LossConfig::DPO:
      o.loss.type = LossType::kDpo;
      break;
    case v1::LossConfig::IPO:
      o.loss.type = LossType::kIpo;
      break;
    case v1::LossConfig::SLIC:
      o.loss.type = LossType::kSlic;
      break;
  }
  o.loss.beta = c.loss().beta();
  o.loss.label_smoothing = c.loss().label_smoothing();
  switch (c.loss().logprob_reduction()) {
    case v1::LossConfig::AUTO:
      o.reduction = c.loss().type() == v1::LossConfig::IPO ? Reduction::kMean : Reduction::kSum;
      break;
    case v1::LossConfig::SUM:
      o.reduction = Reduction::kSum;
      break;
    case v1::LossConfig::MEAN:
      o.reduction = Reduction::kMean;
      break;
  }
  switch (c.reference().mode()) {
    case v1::ReferenceConfig::BEHAVIOR:
      o.reference = ReferenceMode::kBehavior;
      break;
    case v1::ReferenceConfig::SFT:
      o.reference = ReferenceMode::kSft;
      break;
    case v1::ReferenceConfig::EMA:
      o.reference = ReferenceMode::kEma;
      break;
    case v1::ReferenceConfig::STATIC:
      o.reference = ReferenceMode::kStatic;
      break;
  }
  o.behavior_logps_from_actor = c.reference().logprob_source() == v1::ReferenceConfig::ACTOR;
  o.ema_rate = c.reference().ema_rate();
  o.merge_mode = c.lora().merge_mode() == v1::LoraConfig::MEAN_DELTA
                     ? model::MergeMode::kMeanDelta
                     : model::MergeMode::kPeftLinear;
  o.adam = {c.optimizer().adam_beta1(), c.optimizer().adam_beta2(), c.optimizer().adam_eps(),
            c.optimizer().weight_decay()};
  o.learning_rate = c.optimizer().learning_rate();
  o.grad_clip = c.optimizer().grad_clip();
  o.total_steps = c.schedule().total_steps();
  o.warmup_steps = c.optimizer().warmup_steps();
  return o;
}

Learner::~Learner() {
  if (snapshot_server_.server != nullptr) snapshot_server_.server->Shutdown();
}

absl::StatusOr<std::unique_ptr<Learner>> Learner::Create(LearnerOptions options,
                                                         coordinator::CoordinatorClient* client,
                                                         metrics::Registry* registry) {
  if (options.config.model().policy().empty()) {
    return absl::InvalidArgumentError("model.policy (or --policy) names no model directory");
  }
  if (options.pairs_path.empty() && client == nullptr) {
    return absl::InvalidArgumentError("an online learner needs a coordinator client");
  }
  std::unique_ptr<Learner> l(new Learner(std::move(options)));
  const bpo::v1::RunConfig& c = l->options_.config;
  l->world_ = c.learner().world_size();
  l->total_steps_ = c.schedule().total_steps();
  l->steps_per_phase_ = std::max<int64_t>(1, c.schedule().total_steps() / c.schedule().phases());
  BPO_ASSIGN_OR_RETURN(l->run_dir_, RunPath(c));
  l->checkpoint_dir_ = l->run_dir_ + "/checkpoints";
  l->trainer_options_ = TrainerOptionsFromConfig(c);
  BPO_RETURN_IF_ERROR(l->LoadModel());
  BPO_RETURN_IF_ERROR(l->OpenSource(client));
  const int rank = l->options_.rank;
  if (rank < 0 || rank >= l->world_) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rank ", rank, " is outside learner.world_size = ", l->world_));
  }
  BPO_RETURN_IF_ERROR(l->JoinRanks());
  BPO_RETURN_IF_ERROR(l->CreateTrainer());
  BPO_RETURN_IF_ERROR(l->Resume());
  BPO_ASSIGN_OR_RETURN(l->metrics_, LearnerMetrics::Create(registry, l->lora_->members()));
  BPO_ASSIGN_OR_RETURN(
      l->step_log_,
      StepLog::Open(rank == 0 ? l->run_dir_ + "/steps.jsonl"
                              : absl::StrCat(l->run_dir_, "/steps.rank", rank, ".jsonl")));
  BPO_RETURN_IF_ERROR(l->StartSnapshots());
  return l;
}

absl::Status Learner::LoadModel() {
  const bpo::v1::ModelConfig& m = options_.config.model();
  BPO_ASSIGN_OR_RETURN(
      model::LoadOptions load,
      model::ProcessLoadOptions(m.dtype() == v1::ModelConfig::BFLOAT16 ? "bfloat16" : "float32",
                                m.device()));
  model::PolicyOptions policy_options;
  policy_options.load = load;
  policy_options.tokenizer = m.tokenizer();
  if (!fs::exists(policy_options.tokenizer)) policy_options.tokenizer.clear();
  BPO_ASSIGN_OR_RETURN(policy_, model::LoadPolicy(m.policy(), policy_options));

  const bpo::v1::LoraConfig& lc = options_.config.lora();
  model::LoraOptions lo;
  lo.members = lc.members();
  lo.rank = lc.rank();
  lo.alpha = lc.alpha();
  lo.dropout = lc.dropout();
  lo.target_modules.assign(lc.target_modules().begin(), lc.target_modules().end());
  lo.seed = options_.config.seeds().lora_init();
  BPO_ASSIGN_OR_RETURN(lora_, model::LoraEnsemble::Create(*policy_->model, lo));
  return absl::OkStatus();
}

absl::Status Learner::OpenSource(coordinator::CoordinatorClient* client) {
  const bpo::v1::RunConfig& c = options_.config;
  if (options_.pairs_path.empty()) {
    CoordinatorSourceOptions so;
    so.rank = options_.rank;
    so.world_size = world_;
    so.pad_id = policy_->tokenizer->pad_id();
    so.max_prompt_tokens = options_.max_prompt_tokens;
    source_ = CoordinatorSource(client, so);
    return absl::OkStatus();
  }
  OfflineSourceOptions so;
  so.batch_size = c.schedule().batch_size();
  so.total_steps = total_steps_;
  so.rank = options_.rank;
  so.world_size = world_;
  so.shuffle_seed = c.seeds().prompts();
  so.max_prompt_tokens = options_.max_prompt_tokens;
  so.max_response_tokens = c.sampling().max_new_tokens();
  BPO_ASSIGN_OR_RETURN(source_, OpenPairsFile(options_.pairs_path, policy_->tokenizer.get(), so));
  return absl::OkStatus();
}

absl::Status Learner::JoinRanks() {
  if (world_ <= 1) return absl::OkStatus();
  const bpo::v1::RunConfig& c = options_.config;
  collective::CollectiveOptions co;
  co.rank = options_.rank;
  co.world_size = world_;
  // Ranks meet once per launch: a resumed launch starts from another step.
  auto latest = LatestCheckpoint(checkpoint_dir_);
  co.run_id = absl::StrCat(
      c.run_id(), "-from-",
      latest.ok() && options_.resume ? fs::path(*latest).filename().string() : "start");
  co.rendezvous = options_.rendezvous;
  // NCCL runs on the GPU this rank's model is on.
  const at::Device device = policy_->model->options().device();
  if (device.is_cuda()) co.cuda_device = device.has_index() ? device.index() : 0;
  if (co.rendezvous.empty()) {
    fs::create_directories(run_dir_ + "/rendezvous");
    co.rendezvous = "file:" + run_dir_ + "/rendezvous";
  }
  BPO_ASSIGN_OR_RETURN(
      collective::Backend backend,
      collective::ParseBackend(c.learner().backend() == v1::LearnerConfig::NCCL   ? "nccl"
                               : c.learner().backend() == v1::LearnerConfig::GLOO ? "gloo"
                                                                                  : "auto"));
  BPO_ASSIGN_OR_RETURN(collective_, collective::CreateCollective(co, backend));
  trainer_options_.collective = collective_.get();
  return absl::OkStatus();
}

absl::Status Learner::CreateTrainer() {
  const bpo::v1::RunConfig& c = options_.config;
  // Dropout draws from the default generator: seeded per rank, and saved in
  // checkpoints.
  at::manual_seed(c.seeds().global() + static_cast<uint64_t>(options_.rank));
  trainer_ = std::make_unique<EnsembleTrainer>(policy_->model.get(), lora_.get(), trainer_options_);
  // Offline: every pair was sampled by the initial (SFT) policy, snapshot 0.
  // Online: snapshot p is taken at step p*K, before that step.
  if (!source_->online())
    trainer_->SetBehaviorSnapshot(0, lora_->Merge(trainer_options_.merge_mode));
  if (trainer_options_.reference == ReferenceMode::kStatic &&
      !c.reference().static_adapter().empty()) {
    BPO_ASSIGN_OR_RETURN(
        std::unique_ptr<model::LoraEnsemble> fixed,
        model::LoraEnsemble::LoadPeft(*policy_->model, {c.reference().static_adapter()}));
    trainer_->SetStaticReference(fixed->Merge(trainer_options_.merge_mode));
  }
  return absl::OkStatus();
}

absl::Status Learner::Resume() {
  std::error_code ec;
  fs::create_directories(checkpoint_dir_, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(checkpoint_dir_, ": ", ec.message()));
  BPO_ASSIGN_OR_RETURN(std::string signature, ModelSignature(options_.config.model().policy()));
  meta_ = CheckpointMeta{options_.config.run_id(), signature, 0, options_.config.seeds().prompts()};
  if (!options_.resume) return absl::OkStatus();
  auto latest = LatestCheckpoint(checkpoint_dir_);
  if (!latest.ok()) return absl::OkStatus();
  BPO_ASSIGN_OR_RETURN(RestoredState restored,
                       LoadCheckpoint(*latest, options_.rank, meta_, *trainer_, *lora_));
  for (auto& [v, adapter] : restored.behavior) trainer_->SetBehaviorSnapshot(v, std::move(adapter));
  BPO_LOG(INFO) << "resumed from " << *latest << " at step " << restored.step;
  return absl::OkStatus();
}

// Snapshot publishing (rank 0). Offline: version steps / snapshot_every.
// Online: version p at step p*K, when the coordinator asks; the payloads also
// go to a directory so that a restarted learner serves them again.
absl::Status Learner::StartSnapshots() {
  const bool online = source_->online();
  if (options_.rank != 0 || (options_.snapshot_every <= 0 && !online)) return absl::OkStatus();
  const bpo::v1::RunConfig& c = options_.config;
  snapshot::SnapshotStoreOptions so;
  so.shared_dir = c.learner().snapshot_dir();
  if (so.shared_dir.empty() && online) so.shared_dir = run_dir_ + "/snapshots";
  so.keep_versions = std::max(4, c.schedule().max_staleness() + 2);
  snapshots_ = std::make_unique<snapshot::SnapshotStore>(so);
  snapshot_service_ =
      std::make_unique<snapshot::SnapshotServiceImpl>(snapshots_.get(), options_.transport);
  if (online || options_.serve_snapshots) {
    BPO_ASSIGN_OR_RETURN(
        snapshot_server_,
        StartGrpcServer(c.endpoints().snapshots(), {snapshot_service_.get()}, options_.transport));
    // What the actors dial: on a wildcard host, this machine's name.
    serve_address_ = PublishedAddress(c.endpoints().snapshots(), snapshot_server_.port);
  }
  if (!online) {
    if (trainer_->steps_done() % options_.snapshot_every != 0) return absl::OkStatus();
    return Publish(static_cast<uint64_t>(trainer_->steps_done() / options_.snapshot_every))
        .status();
  }
  // Serve what an earlier run of this learner published, and tell the
  // coordinator where it is now.
  BPO_ASSIGN_OR_RETURN(std::vector<bpo::v1::SnapshotInfo> republished,
                       snapshot::RepublishSnapshots(snapshots_.get(), *policy_->model));
  for (const auto& info : republished) {
    if (auto s = source_->ReportSnapshot(
            info, serve_address_,
            snapshot::SnapshotStore::PayloadPath(so.shared_dir, info.version()));
        !s.ok()) {
      BPO_LOG(WARNING) << "re-reporting snapshot v" << info.version() << ": " << s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bpo::v1::SnapshotInfo> Learner::Publish(uint64_t version) {
  const auto t0 = Clock::now();
  BPO_ASSIGN_OR_RETURN(
      std::string bytes,
      snapshot::EncodeSnapshot(*lora_, trainer_options_.merge_mode,
                               /*include_members=*/false, version, trainer_->steps_done()));
  BPO_ASSIGN_OR_RETURN(bpo::v1::SnapshotInfo info,
                       snapshots_->Publish(version, trainer_->steps_done(), std::move(bytes)));
  const double seconds = SecondsSince(t0);
  metrics_->RecordPublish(seconds, info.size_bytes());
  time_publish_ += seconds;
  *options_.out << absl::StrFormat(
                       "snapshot v%d at step %d: %d bytes, sha256 %s…, published in %.1f ms\n",
                       version, trainer_->steps_done(), info.size_bytes(),
                       info.sha256().substr(0, 12), seconds * 1000)
                << std::flush;
  return info;
}

absl::Status Learner::PublishAndReport(uint64_t version) {
  BPO_ASSIGN_OR_RETURN(bpo::v1::SnapshotInfo info, Publish(version));
  return source_->ReportSnapshot(
      info, serve_address_,
      snapshot::SnapshotStore::PayloadPath(snapshots_->options().shared_dir, version));
}

absl::Status Learner::Run() {
  const auto loop_start = Clock::now();
  while (trainer_->steps_done() < total_steps_ &&
         (options_.max_steps == 0 || taken_ < options_.max_steps)) {
    BPO_ASSIGN_OR_RETURN(bool more, Iterate());
    if (!more) break;
  }
  if (source_->online()) PrintTimeAccount(SecondsSince(loop_start));
  if (trainer_->steps_done() == total_steps_ && options_.rank == 0) return Export();
  return absl::OkStatus();
}

absl::StatusOr<bool> Learner::Iterate() {
  const int64_t t = trainer_->steps_done();
  const bool online = source_->online();
  if (online && options_.stop()) return absl::CancelledError("stopped by a signal");
  const auto wait0 = Clock::now();
  BPO_ASSIGN_OR_RETURN(BatchItem item, source_->Next(t));
  switch (item.kind) {
    case BatchItem::Kind::kDone:
      return false;
    case BatchItem::Kind::kPublish:
      BPO_RETURN_IF_ERROR(PublishAndReport(item.version));
      return true;
    case BatchItem::Kind::kWait:
    case BatchItem::Kind::kBatch:
      break;
  }
  if (online) {
    const double waited = SecondsSince(wait0);
    metrics_->RecordWait(waited);
    time_wait_ += waited;
    if (item.kind == BatchItem::Kind::kWait) return true;
    // The behavior policy of phase p is the ensemble at step p*K.
    const uint64_t phase = static_cast<uint64_t>(t / steps_per_phase_);
    if (t % steps_per_phase_ == 0 && !trainer_->behavior_snapshots().count(phase)) {
      trainer_->SetBehaviorSnapshot(phase, lora_->Merge(trainer_options_.merge_mode));
    }
  }
  BPO_ASSIGN_OR_RETURN(StepMetrics m, trainer_->Step(item.batch));
  time_train_ += m.seconds;
  ++taken_;
  BPO_RETURN_IF_ERROR(AfterStep(t, m));
  return true;
}

absl::Status Learner::AfterStep(int64_t t, const StepMetrics& m) {
  metrics_->Record(m);
  BPO_RETURN_IF_ERROR(step_log_->Append(m));
  if (options_.rank == 0) {
    *options_.out << absl::StrFormat(
                         "step %d/%d  loss %.4f  margin %.4f  acc %.2f  kl_ref %.4f  lr %.2e  "
                         "%.2f pairs/s\n",
                         t + 1, total_steps_, m.loss, m.margin, m.accuracy, m.kl_reference,
                         m.learning_rate, m.pairs_per_second)
                  << std::flush;
  }
  if (source_->online()) {
    const bpo::v1::ScheduleConfig& s = options_.config.schedule();
    const int64_t keep_versions =
        s.mode() == bpo::v1::ScheduleConfig::ASYNC ? s.max_staleness() : 0;
    const int64_t phase = t / steps_per_phase_;
    if (phase - keep_versions > 0) {
      trainer_->DropBehaviorSnapshotsBefore(static_cast<uint64_t>(phase - keep_versions));
    }
    if (options_.rank == 0) BPO_RETURN_IF_ERROR(source_->Commit(t, m));
  } else if (snapshots_ != nullptr && trainer_->steps_done() % options_.snapshot_every == 0) {
    BPO_RETURN_IF_ERROR(
        Publish(static_cast<uint64_t>(trainer_->steps_done() / options_.snapshot_every)).status());
  }
  return MaybeCheckpoint();
}

absl::Status Learner::MaybeCheckpoint() {
  const int64_t every = options_.config.learner().checkpoint_every();
  const int64_t done = trainer_->steps_done();
  const bool due = (every > 0 && done % every == 0) || done == total_steps_ ||
                   (options_.max_steps > 0 && taken_ == options_.max_steps);
  if (!due) return absl::OkStatus();
  BPO_RETURN_IF_ERROR(SaveCheckpoint(checkpoint_dir_, options_.rank, world_, meta_, *trainer_,
                                     *lora_, trainer_->behavior_snapshots()));
  if (world_ > 1) {
    // Every rank's part is durable before rank 0 marks the checkpoint complete.
    BPO_RETURN_IF_ERROR(collective_->Barrier());
    if (options_.rank == 0) {
      BPO_RETURN_IF_ERROR(MarkComplete(absl::StrCat(checkpoint_dir_, "/step-", done)));
    }
  }
  return absl::OkStatus();
}

// The run's own account of where this rank's time went.
void Learner::PrintTimeAccount(double wall) const {
  const double w = std::max(wall, 1e-9);
  *options_.out << absl::StrFormat(
                       "rank %d time: %.2f s wall, %.2f s training (%.0f%%), %.2f s fetching "
                       "batches and waiting for them (%.0f%%), %.2f s publishing snapshots, "
                       "%.2f s other (commits, checkpoints)\n",
                       options_.rank, wall, time_train_, 100 * time_train_ / w, time_wait_,
                       100 * time_wait_ / w, time_publish_,
                       wall - time_train_ - time_wait_ - time_publish_)
                << std::flush;
}

absl::Status Learner::Export() {
  const model::MergeMode mode = trainer_options_.merge_mode;
  for (int i = 0; i < lora_->members(); ++i) {
    BPO_RETURN_IF_ERROR(
        lora_->SavePeft(i, absl::StrCat(run_dir_, "/members/member", i), *policy_->model));
  }
  // Last: adapter/adapter_model.safetensors (written atomically, after its
  // config) marks the export complete; `bpo local` checks it.
  BPO_RETURN_IF_ERROR(lora_->ExportMergedPeft(mode, run_dir_ + "/adapter", *policy_->model));
  *options_.out << "trained " << total_steps_ << " steps; merged adapter ("
                << model::MergeModeName(mode) << ", PEFT format) in " << run_dir_ << "/adapter\n";
  return absl::OkStatus();
}

}  // namespace bpo::learner
