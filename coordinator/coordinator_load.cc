// Coordinator load test: many simulated workers over gRPC for a fixed time
// against the real services and a RunStore on disk (fsync on), with every
// RPC's latency measured as the worker sees it.
//
// Each worker is a thread with its own CoordinatorClient (its own channel and,
// over mTLS, its own certificate and identity, as separate processes would
// have) and the client's own heartbeat thread. Actors lease prompts, "sample"
// for a think time and submit pairs of fake tokens; annotators lease pairs,
// "score" them for a think time and submit labels; one learner rank fetches
// batches, "trains" for a step time, commits, and reports a snapshot whenever
// the coordinator asks for one. Idle workers do what the real ones do
// (CoordinatorClient::RunDone): ask for the run status at most once a second
// and sleep the coordinator's retry_after. The schedule is
// async and far longer than the test, so the run never finishes.
//
// Latency of the calls the workers make is taken around the client call
// (retries included); heartbeats, made inside the client, are timed by a
// global gRPC client interceptor. Server-side handler times come from the
// RpcMetrics histogram (bucket bounds, so coarse). Prints markdown tables
// (per RPC, and per minute to show drift as the store grows). Exits 1 on any
// failed call, item refused in-band, or lease that expired; 2 when it cannot
// set up. The default think times keep the pipeline balanced (actors produce
// about 400 pairs/s, annotators can label about 780/s); docs/performance.md
// has the results.
//
//   build/bin/coordinator_load --seconds=600 --json=/tmp/load.json
#include <grpcpp/support/client_interceptor.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/certs.h"
#include "common/config.h"
#include "common/files.h"
#include "common/rpc.h"
#include "common/status_macros.h"
#include "coordinator/client.h"
#include "coordinator/service.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(int, seconds, 600, "How long the workers run.");
ABSL_FLAG(int, actors, 150, "Simulated actors.");
ABSL_FLAG(int, annotators, 49, "Simulated annotators (plus one learner rank).");
ABSL_FLAG(int, actor_think_ms, 3000, "Mean \"sampling\" time of one prompt lease.");
ABSL_FLAG(int, annotator_think_ms, 1000, "Mean \"scoring\" time of one pair lease.");
ABSL_FLAG(int, learner_step_ms, 20, "The learner's \"training\" time per step.");
ABSL_FLAG(int, prompts_per_lease, 8, "sampling.prompts_per_lease.");
ABSL_FLAG(int, pairs_per_lease, 16, "annotation.pairs_per_lease.");
ABSL_FLAG(int, batch_size, 64, "B: pairs per learner step.");
ABSL_FLAG(int, steps_per_phase, 50, "K: steps per phase (a snapshot is reported every K).");
ABSL_FLAG(bool, plaintext, false, "Plaintext gRPC instead of mTLS with one certificate a worker.");
ABSL_FLAG(std::string, json, "", "Also write the results here as JSON.");

namespace bpo::coordinator {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The RPCs, named as the server's metrics name them.
enum Rpc : int {
  kRegister,
  kHeartbeat,
  kGetRunStatus,
  kLeasePrompts,
  kSubmitPairs,
  kLeasePairs,
  kSubmitLabels,
  kFetchBatch,
  kCommitStep,
  kReportSnapshot,
  kRpcCount
};
constexpr std::array<const char*, kRpcCount> kRpcNames = {
    "Register",   "Heartbeat",    "GetRunStatus", "LeasePrompts", "SubmitPairs",
    "LeasePairs", "SubmitLabels", "FetchBatch",   "CommitStep",   "ReportSnapshot"};

// One thread's calls by RPC: how long each took and when it ended (seconds
// since `origin`); merged at the end.
struct Samples {
  explicit Samples(Clock::time_point origin) : origin(origin) {}
  void Add(Rpc rpc, Clock::time_point start, Clock::time_point end) {
    seconds[rpc].push_back(std::chrono::duration<double>(end - start).count());
    at[rpc].push_back(std::chrono::duration<float>(end - origin).count());
  }
  void Merge(const Samples& other) {
    for (int r = 0; r < kRpcCount; ++r) {
      seconds[r].insert(seconds[r].end(), other.seconds[r].begin(), other.seconds[r].end());
      at[r].insert(at[r].end(), other.at[r].begin(), other.at[r].end());
    }
  }
  Clock::time_point origin;
  std::array<std::vector<double>, kRpcCount> seconds;
  std::array<std::vector<float>, kRpcCount> at;
};

// Every failed call (and every item refused in-band) by RPC; the first
// messages of each kept for the report. Thread-safe.
class ErrorLog {
 public:
  void Add(Rpc rpc, const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    if (++counts_[rpc] <= 3)
      messages_.push_back(absl::StrCat(kRpcNames[rpc], ": ", status.ToString()));
  }
  int64_t count(Rpc rpc) const {
    absl::MutexLock lock(&mu_);
    return counts_[rpc];
  }
  int64_t total() const {
    absl::MutexLock lock(&mu_);
    int64_t n = 0;
    for (int64_t c : counts_) n += c;
    return n;
  }
  std::vector<std::string> messages() const {
    absl::MutexLock lock(&mu_);
    return messages_;
  }

 private:
  mutable absl::Mutex mu_;
  std::array<int64_t, kRpcCount> counts_ ABSL_GUARDED_BY(mu_) = {};
  std::vector<std::string> messages_ ABSL_GUARDED_BY(mu_);
};

// Heartbeats happen inside CoordinatorClient: this interceptor, registered
// for the whole process, times those calls from the first send to the status.
// Other calls pass through (a global factory must return an interceptor).
class HeartbeatTimer : public grpc::experimental::Interceptor {
 public:
  HeartbeatTimer(bool timed, absl::Mutex* mu, Samples* samples, ErrorLog* errors)
      : timed_(timed), mu_(mu), samples_(samples), errors_(errors) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using Hook = grpc::experimental::InterceptionHookPoints;
    if (timed_ && methods->QueryInterceptionHookPoint(Hook::PRE_SEND_INITIAL_METADATA)) {
      start_ = Clock::now();
    }
    if (timed_ && methods->QueryInterceptionHookPoint(Hook::POST_RECV_STATUS)) {
      const Clock::time_point end = Clock::now();
      {
        absl::MutexLock lock(mu_);
        samples_->Add(kHeartbeat, start_, end);
      }
      const grpc::Status* status = methods->GetRecvStatus();
      if (!status->ok()) errors_->Add(kHeartbeat, FromGrpcStatus(*status, "Heartbeat"));
    }
    methods->Proceed();
  }

 private:
  const bool timed_;
  absl::Mutex* mu_;
  Samples* samples_;
  ErrorLog* errors_;
  Clock::time_point start_;
};

class HeartbeatTimerFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  HeartbeatTimerFactory(Clock::time_point origin, ErrorLog* errors)
      : errors_(errors), samples_(origin) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new HeartbeatTimer(absl::EndsWith(info->method(), "/Heartbeat"), &mu_, &samples_,
                              errors_);
  }
  Samples TakeSamples() {
    absl::MutexLock lock(&mu_);
    return samples_;
  }

 private:
  ErrorLog* errors_;
  absl::Mutex mu_;
  Samples samples_ ABSL_GUARDED_BY(mu_);
};

// What every simulated worker shares.
struct Load {
  bpo::v1::RunConfig config;
  std::string address;
  absl::Duration actor_think, annotator_think, learner_step;
  absl::Notification stop;
  ErrorLog errors;
  std::atomic<int64_t> pairs_sampled{0}, pairs_labelled{0}, steps_committed{0};
  std::atomic<int64_t> idle_polls{0};
};

absl::Status StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Runs one client call, recording its latency and any error.
template <typename Call>
auto Timed(Rpc rpc, Samples* samples, ErrorLog* errors, Call&& call) {
  const Clock::time_point start = Clock::now();
  auto result = call();
  samples->Add(rpc, start, Clock::now());
  if (absl::Status s = StatusOf(result); !s.ok()) errors->Add(rpc, s);
  return result;
}

// `mean` times a uniform factor in [0.5, 1.5): workers drift apart, as real
// ones do.
absl::Duration Jitter(absl::Duration mean, std::mt19937* rng) {
  return mean * std::uniform_real_distribution<double>(0.5, 1.5)(*rng);
}

// An error is counted; back off a little and carry on.
bool Failed(const absl::Status& s, Load* load) {
  if (s.ok()) return false;
  load->stop.WaitForNotificationWithTimeout(absl::Milliseconds(200));
  return true;
}

// Connects and registers like cli/worker.cc: heartbeats at the interval the
// coordinator names, leases held only while the loop makes progress.
absl::StatusOr<std::unique_ptr<CoordinatorClient>> StartWorker(Load* load,
                                                               TransportSecurity transport,
                                                               const bpo::v1::WorkerInfo& info,
                                                               Samples* samples) {
  ClientOptions options;
  options.address = load->address;
  options.transport = std::move(transport);
  BPO_ASSIGN_OR_RETURN(std::unique_ptr<CoordinatorClient> client,
                       CoordinatorClient::Connect(options));
  BPO_ASSIGN_OR_RETURN(
      bpo::v1::RegisterResponse registered,
      Timed(kRegister, samples, &load->errors, [&] { return client->Register(info); }));
  const absl::Duration every = absl::Seconds(registered.heartbeat_interval().seconds()) +
                               absl::Nanoseconds(registered.heartbeat_interval().nanos());
  const bool holds_leases = info.kind() != bpo::v1::WORKER_KIND_LEARNER;
  client->StartHeartbeats(every,
                          holds_leases ? absl::Seconds(load->config.coordinator().stall_seconds())
                                       : absl::ZeroDuration(),
                          [load](absl::Duration since) {
                            load->errors.Add(kHeartbeat,
                                             absl::DeadlineExceededError(absl::StrCat(
                                                 "stalled for ", absl::FormatDuration(since))));
                          });
  return client;
}

// No work: check the run's state, then wait as told. As actor.cc and
// annotator.cc do (CoordinatorClient::RunDone): GetRunStatus at most once a
// second per worker (the heartbeats carry the state in between).
void IdlePoll(CoordinatorClient* client, const google::protobuf::Duration& retry_after,
              Samples* samples, Load* load, absl::Time* status_checked) {
  load->idle_polls.fetch_add(1, std::memory_order_relaxed);
  if (absl::Now() - *status_checked >= absl::Seconds(1)) {
    *status_checked = absl::Now();
    auto status = Timed(kGetRunStatus, samples, &load->errors, [&] { return client->Status(); });
    if (status.ok() && status->state() == bpo::v1::RUN_STATE_DONE) {
      load->errors.Add(kGetRunStatus, absl::OutOfRangeError("the run finished within the test"));
    }
  }
  SleepRetryAfter(retry_after);
}

void RunActor(Load* load, CoordinatorClient* client, int index, Samples* samples) {
  std::mt19937 rng(index);
  absl::Time status_checked = absl::InfinitePast();
  const int n = load->config.sampling().prompts_per_lease();
  const int response_tokens = load->config.sampling().max_new_tokens();
  while (!load->stop.HasBeenNotified()) {
    auto lease =
        Timed(kLeasePrompts, samples, &load->errors, [&] { return client->LeasePrompts(n); });
    if (Failed(lease.status(), load)) continue;
    client->MarkProgress();
    if (lease->work().empty()) {
      IdlePoll(client, lease->retry_after(), samples, load, &status_checked);
      continue;
    }
    client->HoldLease(lease->lease().lease_id());
    if (load->stop.WaitForNotificationWithTimeout(Jitter(load->actor_think, &rng))) break;
    bpo::v1::SubmitPairsRequest submit;
    submit.set_lease_id(lease->lease().lease_id());
    for (const auto& w : lease->work()) {
      bpo::v1::SampledPair* p = submit.add_pairs();
      p->set_pair_id(w.pair_id());
      p->set_run_id(load->config.run_id());
      p->set_behavior_version(lease->snapshot_version());
      for (int t = 0; t < 64; ++t) p->add_prompt_token_ids(100 + t);
      for (int t = 0; t < response_tokens; ++t) {
        p->mutable_a()->add_token_ids(1000 + t);
        p->mutable_b()->add_token_ids(2000 + t);
      }
    }
    auto submitted = Timed(kSubmitPairs, samples, &load->errors,
                           [&] { return client->SubmitPairs(std::move(submit)); });
    client->ReleaseLease(lease->lease().lease_id());
    if (Failed(submitted.status(), load)) continue;
    for (const auto& r : submitted->results()) {
      if (r.outcome() == bpo::v1::ItemStatus::REJECTED) {
        load->errors.Add(kSubmitPairs, absl::InternalError(absl::StrCat(
                                           "pair ", r.id(), " refused: ", r.message())));
      } else {
        load->pairs_sampled.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
}

void RunAnnotator(Load* load, CoordinatorClient* client, int index, Samples* samples) {
  std::mt19937 rng(100000 + index);
  absl::Time status_checked = absl::InfinitePast();
  const int n = load->config.annotation().pairs_per_lease();
  const absl::Duration lease_for = absl::Seconds(load->config.annotation().lease_seconds());
  while (!load->stop.HasBeenNotified()) {
    auto lease = Timed(kLeasePairs, samples, &load->errors,
                       [&] { return client->LeasePairs(n, lease_for); });
    if (Failed(lease.status(), load)) continue;
    client->MarkProgress();
    if (lease->pairs().empty()) {
      IdlePoll(client, lease->retry_after(), samples, load, &status_checked);
      continue;
    }
    client->HoldLease(lease->lease().lease_id());
    if (load->stop.WaitForNotificationWithTimeout(Jitter(load->annotator_think, &rng))) break;
    bpo::v1::SubmitLabelsRequest submit;
    submit.set_lease_id(lease->lease().lease_id());
    for (const auto& p : lease->pairs()) {
      bpo::v1::Label* label = submit.add_labels();
      label->set_pair_id(p.pair_id());
      label->set_choice(rng() % 2 == 0 ? bpo::v1::CHOICE_A : bpo::v1::CHOICE_B);
      label->set_provenance("rm:load");
    }
    auto submitted = Timed(kSubmitLabels, samples, &load->errors,
                           [&] { return client->SubmitLabels(std::move(submit)); });
    client->ReleaseLease(lease->lease().lease_id());
    if (Failed(submitted.status(), load)) continue;
    for (const auto& r : submitted->results()) {
      if (r.outcome() == bpo::v1::ItemStatus::REJECTED) {
        load->errors.Add(kSubmitLabels, absl::InternalError(absl::StrCat(
                                            "label ", r.id(), " refused: ", r.message())));
      } else {
        load->pairs_labelled.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
}

void RunLearner(Load* load, CoordinatorClient* client, Samples* samples) {
  int64_t step = 0;
  while (!load->stop.HasBeenNotified()) {
    auto batch = Timed(kFetchBatch, samples, &load->errors,
                       [&] { return client->FetchBatch(step, /*rank=*/0, /*world_size=*/1); });
    if (Failed(batch.status(), load)) continue;
    if (batch->done()) {
      load->errors.Add(kFetchBatch, absl::OutOfRangeError("the run finished within the test"));
      return;
    }
    if (batch->publish_snapshot()) {
      bpo::v1::ReportSnapshotRequest report;
      report.mutable_snapshot()->set_version(batch->publish_version());
      report.mutable_snapshot()->set_sha256(std::string(64, 'a'));
      report.mutable_snapshot()->set_size_bytes(20 << 20);
      report.set_serve_address("127.0.0.1:1");
      Failed(Timed(kReportSnapshot, samples, &load->errors,
                   [&] { return client->ReportSnapshot(std::move(report)); }),
             load);
      continue;
    }
    if (batch->pairs().empty()) {
      SleepRetryAfter(batch->retry_after());
      continue;
    }
    if (load->stop.WaitForNotificationWithTimeout(load->learner_step)) break;
    bpo::v1::CommitStepRequest commit;
    commit.set_step(step);
    (*commit.mutable_metrics())["loss"] = 0.69;
    (*commit.mutable_metrics())["seconds"] = absl::ToDoubleSeconds(load->learner_step);
    auto committed = Timed(kCommitStep, samples, &load->errors,
                           [&] { return client->CommitStep(std::move(commit)); });
    if (Failed(committed.status(), load)) continue;
    ++step;
    load->steps_committed.fetch_add(1, std::memory_order_relaxed);
  }
}

// A run far longer than the test: async (actors sample phase p+1 while the
// learner trains on p), a snapshot every K steps, T = 20,000 K; validated
// like a config file.
absl::StatusOr<bpo::v1::RunConfig> LoadConfig() {
  const int k = absl::GetFlag(FLAGS_steps_per_phase);
  const std::string yaml = absl::StrFormat(
      "run_id: load\n"
      "schedule: {mode: async, max_staleness: 1, batch_size: %d, phases: 20000, "
      "total_steps: %d}\n"
      "sampling: {prompts_per_lease: %d}\n"
      "annotation: {kind: rm, pairs_per_lease: %d}\n"
      "coordinator: {fsync: true, vocab_size: 32000}\n",
      absl::GetFlag(FLAGS_batch_size), 20000 * k, absl::GetFlag(FLAGS_prompts_per_lease),
      absl::GetFlag(FLAGS_pairs_per_lease));
  BPO_ASSIGN_OR_RETURN(RunConfigFile file, ParseRunConfig(yaml, "<coordinator_load>", "/tmp"));
  return file.config;
}

// A certificate of the run's CA for `id`, and the transport that presents it.
absl::StatusOr<TransportSecurity> IssueTransport(const std::string& dir, const Identity& id) {
  BPO_RETURN_IF_ERROR(IssueCertificate(dir, id));
  TransportSecurity t;
  BPO_ASSIGN_OR_RETURN(t.ca_pem, ReadWholeFile(dir + "/ca.pem"));
  BPO_ASSIGN_OR_RETURN(t.cert_pem, ReadWholeFile(absl::StrCat(dir, "/", id.name, ".pem")));
  BPO_ASSIGN_OR_RETURN(t.key_pem, ReadWholeFile(absl::StrCat(dir, "/", id.name, ".key")));
  t.identity = id;
  return t;
}

// Nearest-rank percentile of sorted `v`, in ms.
double PercentileMs(const std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return 1e3 * v[std::clamp<size_t>(i, 1, v.size()) - 1];
}

// Server-side handler time from the RpcMetrics histogram: for each method,
// the bucket bound (ms) under which quantile `q` of its calls fell.
std::map<std::string, std::map<double, double>> ServerQuantilesMs(const std::string& exposition,
                                                                  const std::vector<double>& qs) {
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;  // method -> (le, count)
  const std::string prefix = "bpo_coordinator_rpc_seconds_bucket{";
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    auto field = [&](absl::string_view key) {
      const size_t at = line.find(absl::StrCat(key, "=\""));
      if (at == line.npos) return absl::string_view();
      const size_t from = at + key.size() + 2;
      return line.substr(from, line.find('"', from) - from);
    };
    const absl::string_view le = field("le");
    const double bound = le == "+Inf" ? INFINITY : std::stod(std::string(le));
    const double count = std::stod(std::string(line.substr(line.rfind(' ') + 1)));
    buckets[std::string(field("method"))].emplace_back(bound, count);
  }
  std::map<std::string, std::map<double, double>> out;
  for (auto& [method, b] : buckets) {
    std::sort(b.begin(), b.end());
    const double total = b.back().second;
    for (double q : qs) {
      for (const auto& [bound, count] : b) {
        if (count >= q * total) {
          out[method][q] = 1e3 * bound;
          break;
        }
      }
    }
  }
  return out;
}

// Latency of all calls but Register, minute by minute (calls ending in it),
// to show whether the coordinator slows down as the run's tables grow.
// `offset_s`: when the workers started, in `all`'s clock.
void PrintDrift(const Samples& all, double offset_s, double window_s, nlohmann::json* json) {
  const int minutes = static_cast<int>(std::ceil(window_s / 60));
  std::vector<std::vector<double>> by_minute(std::max(1, minutes));
  for (int r = 0; r < kRpcCount; ++r) {
    if (r == kRegister) continue;
    for (size_t i = 0; i < all.seconds[r].size(); ++i) {
      const int m = static_cast<int>((all.at[r][i] - offset_s) / 60);
      by_minute[std::clamp(m, 0, static_cast<int>(by_minute.size()) - 1)].push_back(
          all.seconds[r][i]);
    }
  }
  std::cout
      << "\n| minute | calls | p50 ms | p99 ms | max ms |\n| ---: | ---: | ---: | ---: | ---: |\n";
  for (size_t m = 0; m < by_minute.size(); ++m) {
    std::vector<double>& v = by_minute[m];
    std::sort(v.begin(), v.end());
    const double max_ms = v.empty() ? 0.0 : 1e3 * v.back();
    std::cout << absl::StrFormat("| %d | %d | %.2f | %.2f | %.1f |\n", m + 1, v.size(),
                                 PercentileMs(v, 0.5), PercentileMs(v, 0.99), max_ms);
    (*json)["minutes"].push_back({{"calls", v.size()},
                                  {"p50_ms", PercentileMs(v, 0.5)},
                                  {"p99_ms", PercentileMs(v, 0.99)},
                                  {"max_ms", max_ms}});
  }
}

int Main() {
  auto load = std::make_unique<Load>();
  absl::StatusOr<bpo::v1::RunConfig> run_config = LoadConfig();
  if (!run_config.ok()) {
    std::cerr << "coordinator_load: " << run_config.status() << "\n";
    return 2;
  }
  load->config = *std::move(run_config);
  load->actor_think = absl::Milliseconds(absl::GetFlag(FLAGS_actor_think_ms));
  load->annotator_think = absl::Milliseconds(absl::GetFlag(FLAGS_annotator_think_ms));
  load->learner_step = absl::Milliseconds(absl::GetFlag(FLAGS_learner_step_ms));
  const int actors = absl::GetFlag(FLAGS_actors), annotators = absl::GetFlag(FLAGS_annotators);
  const bool plaintext = absl::GetFlag(FLAGS_plaintext);
  const bpo::v1::RunConfig& config = load->config;

  // Registered before any channel exists, as gRPC requires.
  // It outlives every channel: the workers' clients end before Main returns.
  const Clock::time_point origin = Clock::now();
  HeartbeatTimerFactory heartbeat_timer(origin, &load->errors);
  grpc::experimental::RegisterGlobalClientInterceptorFactory(&heartbeat_timer);

  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_coord_load_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto fail = [&](const absl::Status& s) {
    std::cerr << "coordinator_load: " << s << "\n";
    fs::remove_all(dir);
    return 2;
  };
  std::vector<bpo::v1::Prompt> prompts(2000);
  for (size_t i = 0; i < prompts.size(); ++i) {
    prompts[i].set_text(absl::StrCat("SUBREDDIT: r/load TITLE: prompt ", i,
                                     " POST: ", std::string(400, 'x'), " TL;DR:"));
  }
  auto store = RunStore::Open(
      config, prompts,
      {.path = (dir / "coordinator.db").string(), .fsync = config.coordinator().fsync()});
  if (!store.ok()) return fail(store.status());
  metrics::Registry registry;
  auto rpc_metrics = RpcMetrics::Create(&registry);
  if (!rpc_metrics.ok()) return fail(rpc_metrics.status());

  // One certificate per worker, as `bpo certs` would issue them.
  const std::string pki = (dir / "certs").string();
  std::vector<TransportSecurity> transports;
  std::vector<bpo::v1::WorkerInfo> infos;
  auto add = [&](bpo::v1::WorkerKind kind, Role role, const std::string& name) {
    bpo::v1::WorkerInfo info;
    info.set_kind(kind);
    info.set_name(name);
    info.set_host("localhost");
    if (kind == bpo::v1::WORKER_KIND_ANNOTATOR) info.set_annotator_kind(bpo::v1::ANNOTATOR_KIND_RM);
    if (kind == bpo::v1::WORKER_KIND_LEARNER) info.set_world_size(1);
    infos.push_back(info);
    if (plaintext) {
      transports.push_back(TransportSecurity::Plaintext());
      return absl::OkStatus();
    }
    BPO_ASSIGN_OR_RETURN(TransportSecurity t, IssueTransport(pki, {role, name}));
    transports.push_back(std::move(t));
    return absl::OkStatus();
  };
  TransportSecurity server_transport = TransportSecurity::Plaintext();
  if (!plaintext) {
    if (auto s = CreateCertificateAuthority(pki, config.run_id()); !s.ok()) return fail(s);
    auto t = IssueTransport(pki, {Role::kCoordinator, "coordinator"});
    if (!t.ok()) return fail(t.status());
    server_transport = *t;
  }
  absl::Status issued = add(bpo::v1::WORKER_KIND_LEARNER, Role::kLearner, "learner-0");
  for (int i = 0; i < actors && issued.ok(); ++i) {
    issued = add(bpo::v1::WORKER_KIND_ACTOR, Role::kActor, absl::StrCat("actor-", i));
  }
  for (int i = 0; i < annotators && issued.ok(); ++i) {
    issued = add(bpo::v1::WORKER_KIND_ANNOTATOR, Role::kAnnotator, absl::StrCat("annotator-", i));
  }
  if (!issued.ok()) return fail(issued);

  CoordinatorServices services(store->get(), rpc_metrics->get(), server_transport);
  auto server = StartGrpcServer("127.0.0.1:0", services.list(), server_transport,
                                config.coordinator().max_message_bytes());
  if (!server.ok()) return fail(server.status());
  load->address = absl::StrCat("127.0.0.1:", server->port);
  const int seconds = absl::GetFlag(FLAGS_seconds);
  std::cout << "coordinator_load: " << infos.size() << " workers (1 learner, " << actors
            << " actors, " << annotators << " annotators) for " << seconds << " s over "
            << server_transport.Describe() << ", store " << (dir / "coordinator.db").string()
            << " (fsync " << (config.coordinator().fsync() ? "on" : "off")
            << "), async, B = " << config.schedule().batch_size()
            << ", K = " << config.schedule().total_steps() / config.schedule().phases()
            << ", prompts/lease " << config.sampling().prompts_per_lease() << ", pairs/lease "
            << config.annotation().pairs_per_lease() << ", think actor "
            << absl::FormatDuration(load->actor_think) << " annotator "
            << absl::FormatDuration(load->annotator_think) << " learner step "
            << absl::FormatDuration(load->learner_step) << ", rpcs_per_second_max "
            << config.coordinator().rpcs_per_second_max() << "\n"
            << std::flush;

  // What cli/coordinator_main.cc does between calls: expire leases and read
  // the counters every 500 ms.
  std::thread housekeeping([&] {
    while (!load->stop.WaitForNotificationWithTimeout(absl::Milliseconds(500))) {
      if (auto s = (*store)->ExpireLeases(); !s.ok()) std::cerr << "expire: " << s.status() << "\n";
      if (auto s = (*store)->Counters(); !s.ok()) std::cerr << "counters: " << s.status() << "\n";
    }
  });

  const auto t0 = Clock::now();
  std::vector<Samples> samples(infos.size(), Samples(origin));
  std::vector<std::thread> workers;
  for (size_t i = 0; i < infos.size(); ++i) {
    workers.emplace_back([&, i] {
      auto client = StartWorker(load.get(), transports[i], infos[i], &samples[i]);
      if (!client.ok()) {
        load->errors.Add(kRegister, client.status());
        return;
      }
      switch (infos[i].kind()) {
        case bpo::v1::WORKER_KIND_LEARNER:
          RunLearner(load.get(), client->get(), &samples[i]);
          break;
        case bpo::v1::WORKER_KIND_ACTOR:
          RunActor(load.get(), client->get(), static_cast<int>(i), &samples[i]);
          break;
        default:
          RunAnnotator(load.get(), client->get(), static_cast<int>(i), &samples[i]);
      }
    });
  }
  const int64_t batch = config.schedule().batch_size();
  for (int elapsed = 0; elapsed < seconds;) {
    const int wait = std::min(60, seconds - elapsed);
    absl::SleepFor(absl::Seconds(wait));
    elapsed += wait;
    std::cout << absl::StrFormat("  %4d s: %d steps, %d pairs sampled, %d labelled, %d errors\n",
                                 elapsed, load->steps_committed.load(), load->pairs_sampled.load(),
                                 load->pairs_labelled.load(), load->errors.total())
              << std::flush;
  }
  load->stop.Notify();
  const double window = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& w : workers) w.join();  // each worker's client (and heartbeats) ends with it
  housekeeping.join();
  server->server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));

  Samples all = heartbeat_timer.TakeSamples();
  for (const Samples& s : samples) all.Merge(s);
  const auto server_ms = ServerQuantilesMs(registry.Render(), {0.5, 0.99});
  auto counters = (*store)->Counters();
  if (!counters.ok()) return fail(counters.status());

  nlohmann::json json;
  PrintDrift(all, std::chrono::duration<double>(t0 - origin).count(), window, &json);
  std::cout << "\n| RPC | calls | calls/s | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
               "| server p50 / p99 ms (bucket bound) |\n"
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
  for (int r = 0; r < kRpcCount; ++r) {
    std::vector<double>& v = all.seconds[r];
    std::sort(v.begin(), v.end());
    const auto it = server_ms.find(kRpcNames[r]);
    const std::string server_cell =
        it == server_ms.end()
            ? "–"
            : absl::StrFormat("≤ %.3g / ≤ %.3g", it->second.at(0.5), it->second.at(0.99));
    const double p[] = {PercentileMs(v, 0.5), PercentileMs(v, 0.9), PercentileMs(v, 0.99),
                        PercentileMs(v, 0.999), v.empty() ? 0.0 : 1e3 * v.back()};
    std::cout << absl::StrFormat(
        "| %s | %d | %.1f | %d | %.2f | %.2f | %.2f | %.2f | %.1f | %s |\n", kRpcNames[r], v.size(),
        static_cast<double>(v.size()) / window, load->errors.count(static_cast<Rpc>(r)), p[0], p[1],
        p[2], p[3], p[4], server_cell);
    json["rpcs"][kRpcNames[r]] = {
        {"calls", v.size()}, {"errors", load->errors.count(static_cast<Rpc>(r))},
        {"p50_ms", p[0]},    {"p90_ms", p[1]},
        {"p99_ms", p[2]},    {"p999_ms", p[3]},
        {"max_ms", p[4]}};
  }
  const int64_t steps = load->steps_committed.load();
  const double consumed_per_s = static_cast<double>(steps * batch) / window;
  std::cout << absl::StrFormat(
      "\n%.0f s: %d steps committed, %.0f pairs/s consumed by the learner, %.0f sampled/s, "
      "%.0f labelled/s; %d idle polls; %d leases expired, %d submissions rejected; "
      "%d errors\n",
      window, steps, consumed_per_s, static_cast<double>(load->pairs_sampled.load()) / window,
      static_cast<double>(load->pairs_labelled.load()) / window, load->idle_polls.load(),
      counters->leases_expired, counters->rejected, load->errors.total());
  for (const std::string& m : load->errors.messages()) std::cout << "  error: " << m << "\n";
  json["seconds"] = window;
  json["workers"] = {{"actors", actors}, {"annotators", annotators}, {"learners", 1}};
  json["transport"] = server_transport.Describe();
  json["steps_committed"] = steps;
  json["pairs_consumed_per_s"] = consumed_per_s;
  json["leases_expired"] = counters->leases_expired;
  json["errors"] = load->errors.total();
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    std::ofstream(path) << json.dump(2) << "\n";
  }
  store->reset();
  fs::remove_all(dir);
  return load->errors.total() == 0 && counters->leases_expired == 0 ? 0 : 1;
}

}  // namespace
}  // namespace bpo::coordinator

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return bpo::coordinator::Main();
}
