#include "coordinator/run_store.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/run_store_internal.h"

namespace bpo::coordinator {
namespace {

using bpo::v1::RunConfig;
using internal::kPromptLease;
using internal::Serialize;
using internal::SetDuration;
using internal::ToTimestamp;

// 2: pairs.grp, the fixed lease group of a pair (NULL in stores of version 1:
// each such pair is its own group).
constexpr int64_t kSchemaVersion = 2;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS prompts(idx INTEGER PRIMARY KEY, prompt BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pairs(
  seq INTEGER PRIMARY KEY,
  pair_id TEXT NOT NULL UNIQUE,
  phase INTEGER NOT NULL,
  prompt_idx INTEGER NOT NULL,
  state INTEGER NOT NULL,
  version INTEGER,
  lease_id TEXT,
  worker_id TEXT,
  sampled BLOB,
  label BLOB,
  step INTEGER,
  pos INTEGER,
  note TEXT,
  grp INTEGER);
CREATE INDEX IF NOT EXISTS pairs_by_state ON pairs(state, phase, seq);
CREATE INDEX IF NOT EXISTS pairs_by_step ON pairs(step, pos);
CREATE INDEX IF NOT EXISTS pairs_by_lease ON pairs(lease_id);
CREATE TABLE IF NOT EXISTS leases(
  lease_id TEXT PRIMARY KEY, worker_id TEXT NOT NULL, kind INTEGER NOT NULL,
  deadline_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS leases_by_deadline ON leases(deadline_us);
CREATE TABLE IF NOT EXISTS label_leases(
  seq INTEGER NOT NULL, worker_id TEXT NOT NULL, lease_id TEXT NOT NULL,
  PRIMARY KEY(seq, worker_id));
CREATE INDEX IF NOT EXISTS label_leases_by_lease ON label_leases(lease_id);
CREATE TABLE IF NOT EXISTS labels(
  seq INTEGER NOT NULL, worker_id TEXT NOT NULL, choice INTEGER NOT NULL, label BLOB NOT NULL,
  PRIMARY KEY(seq, worker_id));
CREATE TABLE IF NOT EXISTS workers(
  worker_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, info BLOB NOT NULL,
  last_seen_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots(
  version INTEGER PRIMARY KEY, info BLOB NOT NULL, address TEXT NOT NULL, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps(
  step INTEGER PRIMARY KEY, committed_us INTEGER NOT NULL, request BLOB NOT NULL);
)sql";

// The part of a config that must match when a store is reopened: addresses,
// the store's own path and the launcher's settings may change between runs.
RunConfig Identity(RunConfig c) {
  c.clear_endpoints();
  c.clear_launch();
  c.clear_coordinator();
  c.clear_security();
  return c;
}

}  // namespace

const char* PairStateName(PairState state) {
  switch (state) {
    case PairState::kQueued:
      return "queued";
    case PairState::kPromptLeased:
      return "prompt_leased";
    case PairState::kSampled:
      return "sampled";
    case PairState::kAnnotated:
      return "annotated";
    case PairState::kBatched:
      return "batched";
    case PairState::kConsumed:
      return "consumed";
    case PairState::kDropped:
      return "dropped";
  }
  return "unknown";
}

RunStore::RunStore(RunConfig config, RunStoreOptions options)
    : config_(std::move(config)),
      options_(std::move(options)),
      steps_per_phase_(config_.schedule().total_steps() / config_.schedule().phases()),
      pairs_per_phase_(config_.schedule().pairs_per_phase()) {}

absl::StatusOr<std::unique_ptr<RunStore>> RunStore::Open(const RunConfig& config,
                                                         const PromptLoader& load_prompts,
                                                         RunStoreOptions options) {
  std::unique_ptr<RunStore> store(new RunStore(config, std::move(options)));
  absl::MutexLock lock(&store->mu_);
  BPO_ASSIGN_OR_RETURN(store->db_,
                       Database::Open(store->options_.path, {.fsync = store->options_.fsync}));
  BPO_RETURN_IF_ERROR(store->Init(load_prompts));
  return store;
}

absl::Status RunStore::Init(const PromptLoader& load_prompts) {
  BPO_RETURN_IF_ERROR(db_->Exec(kSchema));
  // Stores of schema 1 lack pairs.grp: add it (their pairs keep NULL, a
  // group of one), then its index, which kSchema cannot name before.
  BPO_ASSIGN_OR_RETURN(Statement * has_grp,
                       db_->Prepare("SELECT COUNT(*) FROM pragma_table_info('pairs') "
                                    "WHERE name = 'grp'"));
  BPO_RETURN_IF_ERROR(has_grp->Step().status());
  if (has_grp->Int(0) == 0) {
    BPO_RETURN_IF_ERROR(db_->Exec("ALTER TABLE pairs ADD COLUMN grp INTEGER"));
  }
  BPO_RETURN_IF_ERROR(
      db_->Exec("CREATE INDEX IF NOT EXISTS pairs_by_group ON pairs(grp, state, seq)"));
  return InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_ASSIGN_OR_RETURN(Statement * get,
                         db_->Prepare("SELECT value FROM meta WHERE key = 'config'"));
    BPO_ASSIGN_OR_RETURN(bool exists, get->Step());
    if (exists) {
      RunConfig stored;
      if (!stored.ParseFromString(get->Text(0))) {
        return absl::DataLossError(absl::StrCat(db_->path(), ": the stored run config is corrupt"));
      }
      if (stored.run_id() != config_.run_id()) {
        return absl::FailedPreconditionError(
            absl::StrCat(db_->path(), ": holds run '", stored.run_id(), "', not '",
                         config_.run_id(), "'; use another coordinator.store or output_dir"));
      }
      google::protobuf::util::MessageDifferencer diff;
      std::string report;
      diff.ReportDifferencesToString(&report);
      if (!diff.Compare(Identity(stored), Identity(config_))) {
        return absl::FailedPreconditionError(absl::StrCat(
            db_->path(), ": run '", config_.run_id(),
            "' was started with another config; a restarted run must use the same one. "
            "Differences (stored -> now):\n",
            report));
      }
      BPO_ASSIGN_OR_RETURN(Statement * count, db_->Prepare("SELECT COUNT(*) FROM prompts"));
      BPO_RETURN_IF_ERROR(count->Step().status());
      prompt_count_ = count->Int(0);
      return absl::OkStatus();
    }
    BPO_ASSIGN_OR_RETURN(std::vector<bpo::v1::Prompt> prompts, load_prompts());
    if (prompts.empty()) {
      return absl::InvalidArgumentError("the run has no alignment prompts (data.prompts)");
    }
    BPO_ASSIGN_OR_RETURN(Statement * put,
                         db_->Prepare("INSERT INTO meta(key, value) VALUES(?, ?)"));
    BPO_RETURN_IF_ERROR(put->Reset().Bind(1, "config").BindBlob(2, Serialize(config_)).Run());
    BPO_RETURN_IF_ERROR(put->Reset().Bind(1, "schema").Bind(2, kSchemaVersion).Run());
    BPO_ASSIGN_OR_RETURN(Statement * add,
                         db_->Prepare("INSERT INTO prompts(idx, prompt) VALUES(?, ?)"));
    for (size_t i = 0; i < prompts.size(); ++i) {
      BPO_RETURN_IF_ERROR(
          add->Reset().Bind(1, static_cast<int64_t>(i)).BindBlob(2, Serialize(prompts[i])).Run());
    }
    prompt_count_ = static_cast<int64_t>(prompts.size());
    return absl::OkStatus();
  });
}

int64_t RunStore::NowMicros() const { return absl::ToUnixMicros(options_.clock()); }

absl::StatusOr<int64_t> RunStore::GetCounter(const std::string& key) {
  BPO_ASSIGN_OR_RETURN(Statement * st, db_->Prepare("SELECT value FROM meta WHERE key = ?"));
  st->Bind(1, key);
  BPO_ASSIGN_OR_RETURN(bool row, st->Step());
  return row ? st->Int(0) : 0;
}

absl::Status RunStore::SetCounter(const std::string& key, int64_t value) {
  BPO_ASSIGN_OR_RETURN(Statement * st,
                       db_->Prepare("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)"));
  return st->Bind(1, key).Bind(2, value).Run();
}

absl::Status RunStore::AddCounter(const std::string& key, int64_t delta) {
  BPO_ASSIGN_OR_RETURN(int64_t v, GetCounter(key));
  return SetCounter(key, v + delta);
}

int64_t RunStore::PromptIndex(int64_t cursor) {
  const int64_t epoch = cursor / prompt_count_;
  if (epoch != epoch_) {
    permutation_.resize(prompt_count_);
    std::iota(permutation_.begin(), permutation_.end(), 0);
    std::mt19937_64 rng(config_.seeds().prompts() + static_cast<uint64_t>(epoch) * 1000003u);
    std::shuffle(permutation_.begin(), permutation_.end(), rng);
    epoch_ = epoch;
  }
  return permutation_[cursor % prompt_count_];
}

absl::StatusOr<int64_t> RunStore::AddPair(int phase, int64_t group) {
  BPO_ASSIGN_OR_RETURN(int64_t cursor, GetCounter("next_prompt"));
  BPO_ASSIGN_OR_RETURN(int64_t seq, GetCounter("next_seq"));
  BPO_ASSIGN_OR_RETURN(
      Statement * st, db_->Prepare("INSERT INTO pairs(seq, pair_id, phase, prompt_idx, state, grp) "
                                   "VALUES(?, ?, ?, ?, 0, ?)"));
  BPO_RETURN_IF_ERROR(st->Bind(1, seq)
                          .Bind(2, absl::StrCat("p", phase, "-", seq))
                          .Bind(3, static_cast<int64_t>(phase))
                          .Bind(4, PromptIndex(cursor))
                          .Bind(5, group < 0 ? seq : group)
                          .Run());
  BPO_RETURN_IF_ERROR(SetCounter("next_prompt", cursor + 1));
  BPO_RETURN_IF_ERROR(SetCounter("next_seq", seq + 1));
  return seq;
}

absl::Status RunStore::AddGroups(int phase, int64_t count) {
  const int64_t size = std::max(1, config_.sampling().prompts_per_lease());
  int64_t group = -1;
  for (int64_t i = 0; i < count; ++i) {
    BPO_ASSIGN_OR_RETURN(int64_t seq, AddPair(phase, i % size == 0 ? -1 : group));
    if (i % size == 0) group = seq;
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RunStore::NewestSnapshot() {
  BPO_ASSIGN_OR_RETURN(Statement * st, db_->Prepare("SELECT MAX(version) FROM snapshots"));
  BPO_RETURN_IF_ERROR(st->Step().status());
  return st->IsNull(0) ? -1 : st->Int(0);
}

absl::Status RunStore::OpenPhasesUpTo(int64_t newest_snapshot) {
  const bool async = config_.schedule().mode() == bpo::v1::ScheduleConfig::ASYNC;
  const int64_t last =
      std::min<int64_t>(config_.schedule().phases() - 1,
                        newest_snapshot + (async ? config_.schedule().max_staleness() : 0));
  BPO_ASSIGN_OR_RETURN(int64_t opened, GetCounter("phases_opened"));
  for (int64_t p = opened; p <= last; ++p) {
    BPO_RETURN_IF_ERROR(AddGroups(static_cast<int>(p), pairs_per_phase_));
    BPO_RETURN_IF_ERROR(SetCounter("phases_opened", p + 1));
  }
  return absl::OkStatus();
}

absl::StatusOr<RunStore::Worker> RunStore::FindWorker(const std::string& worker_id,
                                                      bpo::v1::WorkerKind kind) {
  BPO_ASSIGN_OR_RETURN(Statement * st,
                       db_->Prepare("SELECT info FROM workers WHERE worker_id = ?"));
  st->Bind(1, worker_id);
  BPO_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("unknown worker_id '", worker_id, "' in run '",
                                            config_.run_id(),
                                            "': register first (Coordinator.Register)"));
  }
  Worker w{worker_id, {}};
  w.info.ParseFromString(st->Text(0));
  if (kind != bpo::v1::WORKER_KIND_UNSPECIFIED && w.info.kind() != kind) {
    return absl::PermissionDeniedError(absl::StrCat("worker '", worker_id, "' registered as ",
                                                    bpo::v1::WorkerKind_Name(w.info.kind()),
                                                    ", not ", bpo::v1::WorkerKind_Name(kind)));
  }
  return w;
}

absl::StatusOr<bpo::v1::WorkerInfo> RunStore::GetWorker(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  BPO_ASSIGN_OR_RETURN(Worker w, FindWorker(worker_id, bpo::v1::WORKER_KIND_UNSPECIFIED));
  return w.info;
}

absl::Status RunStore::TouchWorker(const std::string& worker_id) {
  BPO_ASSIGN_OR_RETURN(Statement * st,
                       db_->Prepare("UPDATE workers SET last_seen_us = ? WHERE worker_id = ?"));
  return st->Bind(1, NowMicros()).Bind(2, worker_id).Run();
}

absl::StatusOr<std::string> RunStore::NewLeaseId(const std::string& worker_id, int kind,
                                                 int64_t deadline_us) {
  BPO_ASSIGN_OR_RETURN(int64_t n, GetCounter("leases_granted"));
  BPO_RETURN_IF_ERROR(SetCounter("leases_granted", n + 1));
  std::string id = absl::StrCat(kind == kPromptLease ? "lp" : "ll", n);
  BPO_ASSIGN_OR_RETURN(Statement * st,
                       db_->Prepare("INSERT INTO leases(lease_id, worker_id, kind, deadline_us) "
                                    "VALUES(?, ?, ?, ?)"));
  BPO_RETURN_IF_ERROR(st->Bind(1, id)
                          .Bind(2, worker_id)
                          .Bind(3, static_cast<int64_t>(kind))
                          .Bind(4, deadline_us)
                          .Run());
  return id;
}

absl::StatusOr<int64_t> RunStore::ExpireLocked() {
  const int64_t now = NowMicros();
  BPO_ASSIGN_OR_RETURN(Statement * count,
                       db_->Prepare("SELECT COUNT(*) FROM leases WHERE deadline_us < ?"));
  count->Bind(1, now);
  BPO_RETURN_IF_ERROR(count->Step().status());
  const int64_t n = count->Int(0);
  if (n == 0) return 0;
  BPO_ASSIGN_OR_RETURN(
      Statement * requeue,
      db_->Prepare("UPDATE pairs SET state = 0, lease_id = NULL, worker_id = NULL, version = NULL "
                   "WHERE state = 1 AND lease_id IN "
                   "(SELECT lease_id FROM leases WHERE deadline_us < ?)"));
  BPO_RETURN_IF_ERROR(requeue->Bind(1, now).Run());
  BPO_ASSIGN_OR_RETURN(Statement * labels,
                       db_->Prepare("DELETE FROM label_leases WHERE lease_id IN "
                                    "(SELECT lease_id FROM leases WHERE deadline_us < ?)"));
  BPO_RETURN_IF_ERROR(labels->Bind(1, now).Run());
  BPO_ASSIGN_OR_RETURN(Statement * drop, db_->Prepare("DELETE FROM leases WHERE deadline_us < ?"));
  BPO_RETURN_IF_ERROR(drop->Bind(1, now).Run());
  BPO_RETURN_IF_ERROR(AddCounter("leases_expired", n));
  return n;
}

absl::StatusOr<int64_t> RunStore::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_ASSIGN_OR_RETURN(n, ExpireLocked());
    return absl::OkStatus();
  }));
  return n;
}

absl::StatusOr<bpo::v1::RegisterResponse> RunStore::Register(
    const bpo::v1::RegisterRequest& request) {
  const bpo::v1::WorkerInfo& info = request.worker();
  if (!bpo::v1::WorkerKind_IsValid(info.kind()) ||
      !bpo::v1::AnnotatorKind_IsValid(info.annotator_kind())) {
    return absl::InvalidArgumentError(
        absl::StrCat("RegisterRequest.worker: unknown kind ", static_cast<int>(info.kind()),
                     " or annotator_kind ", static_cast<int>(info.annotator_kind())));
  }
  if (info.kind() == bpo::v1::WORKER_KIND_UNSPECIFIED || info.name().empty()) {
    return absl::InvalidArgumentError("RegisterRequest.worker needs a kind and a name");
  }
  if (info.kind() == bpo::v1::WORKER_KIND_ANNOTATOR &&
      info.annotator_kind() == bpo::v1::ANNOTATOR_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError("an annotator must say its annotator_kind (rm, rule, human)");
  }
  if (info.kind() == bpo::v1::WORKER_KIND_LEARNER &&
      (info.world_size() != config_.learner().world_size() || info.rank() < 0 ||
       info.rank() >= info.world_size())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "learner rank ", info.rank(), " of world size ", info.world_size(), " does not fit run '",
        config_.run_id(), "' (learner.world_size = ", config_.learner().world_size(), ")"));
  }
  absl::MutexLock lock(&mu_);
  bpo::v1::RegisterResponse response;
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    if (!info.model_sha256().empty()) {
      // Every worker of a kind must have loaded the same model.
      const std::string key =
          absl::StrCat("model:", bpo::v1::WorkerKind_Name(info.kind()), ":", info.annotator_kind());
      BPO_ASSIGN_OR_RETURN(Statement * get, db_->Prepare("SELECT value FROM meta WHERE key = ?"));
      get->Bind(1, key);
      BPO_ASSIGN_OR_RETURN(bool row, get->Step());
      if (row && get->Text(0) != info.model_sha256()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "worker '", info.name(), "' loaded a model with sha256 ", info.model_sha256(),
            " but the run's ", bpo::v1::WorkerKind_Name(info.kind()), "s use ", get->Text(0)));
      }
      if (!row) {
        BPO_ASSIGN_OR_RETURN(Statement * put,
                             db_->Prepare("INSERT INTO meta(key, value) VALUES(?, ?)"));
        BPO_RETURN_IF_ERROR(put->Bind(1, key).BindBlob(2, info.model_sha256()).Run());
      }
    }
    BPO_ASSIGN_OR_RETURN(Statement * find,
                         db_->Prepare("SELECT worker_id FROM workers WHERE name = ?"));
    find->Bind(1, info.name());
    BPO_ASSIGN_OR_RETURN(bool known, find->Step());
    std::string id;
    if (known) {
      id = find->Text(0);
      // A name keeps the kind it first registered with: re-registering under
      // another worker's name must not turn, say, an actor into a learner.
      BPO_ASSIGN_OR_RETURN(Worker before, FindWorker(id, bpo::v1::WORKER_KIND_UNSPECIFIED));
      // A name belongs to the identity that first registered it.
      if (before.info.identity() != info.identity()) {
        return absl::PermissionDeniedError(absl::StrCat(
            "worker name '", info.name(), "' belongs to identity '", before.info.identity(),
            "'; a registration by '", info.identity(), "' under that name is refused"));
      }
      if (before.info.kind() != info.kind() ||
          before.info.annotator_kind() != info.annotator_kind()) {
        return absl::PermissionDeniedError(absl::StrCat(
            "worker name '", info.name(), "' is registered as ",
            bpo::v1::WorkerKind_Name(before.info.kind()), " (",
            bpo::v1::AnnotatorKind_Name(before.info.annotator_kind()), "); a registration as ",
            bpo::v1::WorkerKind_Name(info.kind()), " (",
            bpo::v1::AnnotatorKind_Name(info.annotator_kind()), ") under that name is refused"));
      }
      // A worker registers once per process: a registration under a known
      // name is a restarted worker, which holds nothing any more. Its
      // leases' work goes back to the queue now rather than at expiry.
      BPO_ASSIGN_OR_RETURN(
          Statement * requeue,
          db_->Prepare(
              "UPDATE pairs SET state = 0, lease_id = NULL, worker_id = NULL, version = NULL "
              "WHERE state = 1 AND worker_id = ?"));
      BPO_RETURN_IF_ERROR(requeue->Bind(1, id).Run());
      BPO_ASSIGN_OR_RETURN(Statement * unlabel,
                           db_->Prepare("DELETE FROM label_leases WHERE worker_id = ?"));
      BPO_RETURN_IF_ERROR(unlabel->Bind(1, id).Run());
      BPO_ASSIGN_OR_RETURN(Statement * unlease,
                           db_->Prepare("DELETE FROM leases WHERE worker_id = ?"));
      BPO_RETURN_IF_ERROR(unlease->Bind(1, id).Run());
      BPO_ASSIGN_OR_RETURN(
          Statement * up,
          db_->Prepare("UPDATE workers SET info = ?, last_seen_us = ? WHERE worker_id = ?"));
      BPO_RETURN_IF_ERROR(up->BindBlob(1, Serialize(info)).Bind(2, NowMicros()).Bind(3, id).Run());
    } else {
      // Names per identity are bounded: one identity cannot flood the store.
      const int32_t cap = config_.coordinator().workers_per_identity_max();
      if (!info.identity().empty() && cap > 0) {
        const std::string key = absl::StrCat("workers_of:", info.identity());
        BPO_ASSIGN_OR_RETURN(int64_t owned, GetCounter(key));
        if (owned >= cap) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "identity '", info.identity(), "' has registered ", owned,
              " worker names, the most allowed (coordinator.workers_per_identity_max)"));
        }
        BPO_RETURN_IF_ERROR(SetCounter(key, owned + 1));
      }
      BPO_ASSIGN_OR_RETURN(int64_t n, GetCounter("next_worker"));
      BPO_RETURN_IF_ERROR(SetCounter("next_worker", n + 1));
      static const char* kPrefix[] = {"w", "actor", "annotator", "learner"};
      const int k = info.kind();
      id = absl::StrCat(kPrefix[k >= 0 && k <= 3 ? k : 0], "-", n);
      BPO_ASSIGN_OR_RETURN(
          Statement * ins,
          db_->Prepare(
              "INSERT INTO workers(worker_id, name, info, last_seen_us) VALUES(?, ?, ?, ?)"));
      BPO_RETURN_IF_ERROR(ins->Bind(1, id)
                              .Bind(2, info.name())
                              .BindBlob(3, Serialize(info))
                              .Bind(4, NowMicros())
                              .Run());
    }
    response.set_worker_id(id);
    return absl::OkStatus();
  }));
  response.set_run_id(config_.run_id());
  *response.mutable_config() = config_;
  SetDuration(response.mutable_heartbeat_interval(),
              absl::Seconds(config_.coordinator().heartbeat_seconds()));
  return response;
}

absl::StatusOr<bpo::v1::HeartbeatResponse> RunStore::Heartbeat(
    const bpo::v1::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
  bpo::v1::HeartbeatResponse response;
  BPO_RETURN_IF_ERROR(InTransaction(db_.get(), [&]() -> absl::Status {
    BPO_RETURN_IF_ERROR(FindWorker(request.worker_id(), bpo::v1::WORKER_KIND_UNSPECIFIED).status());
    BPO_RETURN_IF_ERROR(TouchWorker(request.worker_id()));
    BPO_RETURN_IF_ERROR(ExpireLocked().status());
    const int64_t now = NowMicros();
    BPO_ASSIGN_OR_RETURN(
        Statement * get,
        db_->Prepare("SELECT kind FROM leases WHERE lease_id = ? AND worker_id = ?"));
    BPO_ASSIGN_OR_RETURN(Statement * extend,
                         db_->Prepare("UPDATE leases SET deadline_us = ? WHERE lease_id = ?"));
    for (const std::string& id : request.lease_ids()) {
      get->Reset().Bind(1, id).Bind(2, request.worker_id());
      BPO_ASSIGN_OR_RETURN(bool row, get->Step());
      if (!row) continue;
      const int64_t seconds = get->Int(0) == kPromptLease
                                  ? config_.coordinator().actor_lease_seconds()
                                  : config_.annotation().lease_seconds();
      const int64_t deadline = now + seconds * 1000000;
      BPO_RETURN_IF_ERROR(extend->Reset().Bind(1, deadline).Bind(2, id).Run());
      auto* lease = response.add_leases();
      lease->set_lease_id(id);
      *lease->mutable_deadline() = ToTimestamp(deadline);
    }
    BPO_ASSIGN_OR_RETURN(int64_t committed, StepsCommitted());
    response.set_state(committed >= config_.schedule().total_steps() ? bpo::v1::RUN_STATE_DONE
                                                                     : bpo::v1::RUN_STATE_RUNNING);
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<int64_t> RunStore::StepsCommitted() {
  BPO_ASSIGN_OR_RETURN(Statement * st, db_->Prepare("SELECT COUNT(*) FROM steps"));
  BPO_RETURN_IF_ERROR(st->Step().status());
  return st->Int(0);
}

absl::StatusOr<int64_t> RunStore::BatchesFormed() {
  BPO_ASSIGN_OR_RETURN(Statement * st,
                       db_->Prepare("SELECT MAX(step) FROM pairs WHERE step IS NOT NULL"));
  BPO_RETURN_IF_ERROR(st->Step().status());
  return st->IsNull(0) ? 0 : st->Int(0) + 1;
}

absl::StatusOr<StoreCounters> RunStore::Counters() {
  absl::MutexLock lock(&mu_);
  StoreCounters c;
  BPO_ASSIGN_OR_RETURN(Statement * by_state,
                       db_->Prepare("SELECT state, COUNT(*) FROM pairs GROUP BY state"));
  for (int s = 0; s <= static_cast<int>(PairState::kDropped); ++s)
    c.pairs[static_cast<PairState>(s)] = 0;
  while (true) {
    BPO_ASSIGN_OR_RETURN(bool row, by_state->Step());
    if (!row) break;
    c.pairs[static_cast<PairState>(by_state->Int(0))] = by_state->Int(1);
  }
  c.prompt_leases_active = c.pairs[PairState::kPromptLeased];
  BPO_ASSIGN_OR_RETURN(Statement * ll, db_->Prepare("SELECT COUNT(*) FROM label_leases"));
  BPO_RETURN_IF_ERROR(ll->Step().status());
  c.label_leases_active = ll->Int(0);
  BPO_ASSIGN_OR_RETURN(c.leases_granted, GetCounter("leases_granted"));
  BPO_ASSIGN_OR_RETURN(c.leases_expired, GetCounter("leases_expired"));
  BPO_ASSIGN_OR_RETURN(c.max_staleness, GetCounter("max_staleness"));
  BPO_ASSIGN_OR_RETURN(c.steps_committed, StepsCommitted());
  for (const char* kind : {"actor", "annotator", "learner"}) c.workers_active[kind] = 0;
  BPO_ASSIGN_OR_RETURN(Statement * workers,
                       db_->Prepare("SELECT info FROM workers WHERE last_seen_us >= ?"));
  workers->Bind(1, NowMicros() - config_.coordinator().worker_timeout_seconds() * 1000000LL);
  while (true) {
    BPO_ASSIGN_OR_RETURN(bool row, workers->Step());
    if (!row) break;
    bpo::v1::WorkerInfo info;
    info.ParseFromString(workers->Text(0));
    switch (info.kind()) {
      case bpo::v1::WORKER_KIND_ACTOR:
        ++c.workers_active["actor"];
        break;
      case bpo::v1::WORKER_KIND_ANNOTATOR:
        ++c.workers_active["annotator"];
        break;
      case bpo::v1::WORKER_KIND_LEARNER:
        ++c.workers_active["learner"];
        break;
      default:
        break;
    }
  }
  c.duplicates = duplicates_;
  c.rejected = rejected_;
  return c;
}

absl::StatusOr<std::vector<std::string>> RunStore::PairIds(PairState state) {
  absl::MutexLock lock(&mu_);
  BPO_ASSIGN_OR_RETURN(Statement * st,
                       db_->Prepare("SELECT pair_id FROM pairs WHERE state = ? ORDER BY seq"));
  st->Bind(1, static_cast<int64_t>(state));
  std::vector<std::string> ids;
  while (true) {
    BPO_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    ids.push_back(st->Text(0));
  }
  return ids;
}

absl::StatusOr<bpo::v1::RunStatus> RunStore::Status() {
  BPO_ASSIGN_OR_RETURN(StoreCounters c, Counters());
  absl::MutexLock lock(&mu_);
  bpo::v1::RunStatus s;
  const auto& sch = config_.schedule();
  s.set_run_id(config_.run_id());
  s.set_step(c.steps_committed);
  s.set_total_steps(sch.total_steps());
  s.set_phases(sch.phases());
  s.set_phase(static_cast<int32_t>(
      std::min<int64_t>(sch.phases() - 1, c.steps_committed / steps_per_phase_)));
  s.set_state(c.steps_committed >= sch.total_steps() ? bpo::v1::RUN_STATE_DONE
                                                     : bpo::v1::RUN_STATE_RUNNING);
  s.set_pairs_queued(c.pairs[PairState::kQueued]);
  s.set_pairs_leased(c.pairs[PairState::kPromptLeased]);
  s.set_pairs_sampled(c.pairs[PairState::kSampled]);
  s.set_pairs_annotated(c.pairs[PairState::kAnnotated]);
  s.set_pairs_batched(c.pairs[PairState::kBatched]);
  s.set_pairs_consumed(c.pairs[PairState::kConsumed]);
  s.set_pairs_dropped(c.pairs[PairState::kDropped]);
  s.set_leases_expired(c.leases_expired);
  s.set_max_staleness_seen(c.max_staleness);
  s.set_pairs_total(static_cast<int64_t>(sch.phases()) * pairs_per_phase_);

  BPO_ASSIGN_OR_RETURN(
      Statement * workers,
      db_->Prepare(
          "SELECT w.worker_id, w.info, w.last_seen_us, "
          "(SELECT COUNT(*) FROM pairs p WHERE p.state = 1 AND p.worker_id = w.worker_id) + "
          "(SELECT COUNT(*) FROM label_leases l WHERE l.worker_id = w.worker_id) "
          "FROM workers w ORDER BY w.worker_id"));
  while (true) {
    BPO_ASSIGN_OR_RETURN(bool row, workers->Step());
    if (!row) break;
    auto* w = s.add_workers();
    w->set_worker_id(workers->Text(0));
    w->mutable_info()->ParseFromString(workers->Text(1));
    *w->mutable_last_seen() = ToTimestamp(workers->Int(2));
    w->set_leases_held(static_cast<int32_t>(workers->Int(3)));
  }
  BPO_ASSIGN_OR_RETURN(Statement * snaps,
                       db_->Prepare("SELECT info FROM snapshots ORDER BY version"));
  while (true) {
    BPO_ASSIGN_OR_RETURN(bool row, snaps->Step());
    if (!row) break;
    s.add_snapshots()->ParseFromString(snaps->Text(0));
  }
  // Agreement of the first two raters of every pair labelled twice.
  BPO_ASSIGN_OR_RETURN(
      Statement * agree,
      db_->Prepare("SELECT seq, choice FROM labels WHERE choice != 4 ORDER BY seq, rowid"));
  int64_t compared = 0, agreed = 0, last_seq = -1, first = 0, n_for_seq = 0;
  while (true) {
    BPO_ASSIGN_OR_RETURN(bool row, agree->Step());
    if (!row) break;
    if (agree->Int(0) != last_seq) {
      last_seq = agree->Int(0);
      first = agree->Int(1);
      n_for_seq = 1;
    } else if (++n_for_seq == 2) {
      ++compared;
      agreed += agree->Int(1) == first;
    }
  }
  s.set_rater_pairs_compared(compared);
  s.set_rater_agreement(compared > 0 ? static_cast<double>(agreed) / compared : 0.0);
  BPO_ASSIGN_OR_RETURN(Statement * last,
                       db_->Prepare("SELECT request FROM steps ORDER BY step DESC LIMIT 1"));
  BPO_ASSIGN_OR_RETURN(bool has_last, last->Step());
  if (has_last) {
    bpo::v1::CommitStepRequest commit;
    commit.ParseFromString(last->Text(0));
    s.mutable_last_step_metrics()->insert(commit.metrics().begin(), commit.metrics().end());
  }
  return s;
}

}  // namespace bpo::coordinator
