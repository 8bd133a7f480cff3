// Coordinator throughput with simulated workers: pairs per second through
// lease -> submit -> label lease -> label -> batch -> commit, for a whole run
// (T = 256 steps of B = 32: 8,192 pairs in F = 16 phases), with the store on
// disk. Workers are threads that do no model work: 2 actors and 1 annotator
// leasing `lease` items at a time, and 1 learner rank. Transport: direct calls
// into the RunStore, or gRPC on loopback (the real services and client).
//
//   build/bin/coordinator_benchmark --benchmark_repetitions=3
//     (add --benchmark_report_aggregates_only=true for medians only)
#include <benchmark/benchmark.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/rpc.h"
#include "coordinator/client.h"
#include "coordinator/service.h"

namespace bpo::coordinator {
namespace {

namespace fs = std::filesystem;

// The operations a simulated worker needs, over either transport.
struct Ops {
  std::function<std::string(const bpo::v1::WorkerInfo&)> reg;
  std::function<bpo::v1::LeasePromptsResponse(const std::string&, int)> lease_prompts;
  std::function<void(bpo::v1::SubmitPairsRequest)> submit_pairs;
  std::function<bpo::v1::LeasePairsResponse(const std::string&, int)> lease_pairs;
  std::function<void(bpo::v1::SubmitLabelsRequest)> submit_labels;
  std::function<bpo::v1::FetchBatchResponse(const std::string&, int64_t)> fetch;
  std::function<void(const std::string&, int64_t)> commit;
  std::function<void(const std::string&, uint64_t)> report;
};

template <typename T>
T Must(absl::StatusOr<T> v) {
  if (!v.ok()) {
    fprintf(stderr, "benchmark: %s\n", std::string(v.status().message()).c_str());
    abort();
  }
  return std::move(*v);
}

void RunPipeline(const Ops& ops, int lease, int64_t total_steps) {
  std::atomic<bool> done{false};
  bpo::v1::WorkerInfo li;
  li.set_kind(bpo::v1::WORKER_KIND_LEARNER);
  li.set_name("learner");
  li.set_world_size(1);
  const std::string learner = ops.reg(li);
  std::vector<std::thread> threads;
  for (int a = 0; a < 2; ++a) {
    threads.emplace_back([&, a] {
      bpo::v1::WorkerInfo info;
      info.set_kind(bpo::v1::WORKER_KIND_ACTOR);
      info.set_name(absl::StrCat("actor", a));
      const std::string id = ops.reg(info);
      while (!done) {
        auto l = ops.lease_prompts(id, lease);
        if (l.work().empty()) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        bpo::v1::SubmitPairsRequest s;
        s.set_worker_id(id);
        s.set_lease_id(l.lease().lease_id());
        for (const auto& w : l.work()) {
          auto* p = s.add_pairs();
          p->set_pair_id(w.pair_id());
          p->set_behavior_version(l.snapshot_version());
          for (int t = 0; t < 64; ++t) p->add_prompt_token_ids(t);
          for (int t = 0; t < 53; ++t) {
            p->mutable_a()->add_token_ids(t);
            p->mutable_b()->add_token_ids(t + 1);
          }
        }
        ops.submit_pairs(std::move(s));
      }
    });
  }
  threads.emplace_back([&] {
    bpo::v1::WorkerInfo info;
    info.set_kind(bpo::v1::WORKER_KIND_ANNOTATOR);
    info.set_annotator_kind(bpo::v1::ANNOTATOR_KIND_RULE);
    info.set_name("annotator");
    const std::string id = ops.reg(info);
    while (!done) {
      auto l = ops.lease_pairs(id, lease);
      if (l.pairs().empty()) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      bpo::v1::SubmitLabelsRequest s;
      s.set_worker_id(id);
      s.set_lease_id(l.lease().lease_id());
      for (const auto& p : l.pairs()) {
        auto* label = s.add_labels();
        label->set_pair_id(p.pair_id());
        label->set_choice(bpo::v1::CHOICE_A);
        label->set_provenance("rule:bench");
      }
      ops.submit_labels(std::move(s));
    }
  });
  for (int64_t t = 0; t < total_steps;) {
    auto b = ops.fetch(learner, t);
    if (b.publish_snapshot()) {
      ops.report(learner, b.publish_version());
    } else if (b.pairs().empty()) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    } else {
      ops.commit(learner, t);
      ++t;
    }
  }
  done = true;
  for (auto& th : threads) th.join();
}

bpo::v1::RunConfig BenchConfig() {
  bpo::v1::RunConfig c = DefaultRunConfig().config;
  c.set_run_id("bench");
  c.mutable_schedule()->set_total_steps(256);
  c.mutable_schedule()->set_phases(16);
  c.mutable_schedule()->set_batch_size(32);
  c.mutable_schedule()->set_pairs_per_phase(16 * 32);
  return c;
}

// Args: fsync (0/1), grpc (0/1), lease size.
void BM_Pipeline(benchmark::State& state) {
  const bool fsync = state.range(0) != 0, grpc_transport = state.range(1) != 0;
  const int lease = static_cast<int>(state.range(2));
  const bpo::v1::RunConfig config = BenchConfig();
  std::vector<bpo::v1::Prompt> prompts(2000);
  for (size_t i = 0; i < prompts.size(); ++i) {
    prompts[i].set_text(absl::StrCat("SUBREDDIT: r/bench TITLE: prompt ", i,
                                     " POST: ", std::string(400, 'x'), " TL;DR:"));
  }
  int64_t pairs = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_coord_bench_", getpid());
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto store =
        Must(RunStore::Open(config, prompts, {.path = (dir / "s.db").string(), .fsync = fsync}));
    metrics::Registry registry;
    auto rpc_metrics = Must(RpcMetrics::Create(&registry));
    CoordinatorServices services(store.get(), rpc_metrics.get(), TransportSecurity::Plaintext());
    GrpcServer server;
    std::vector<std::unique_ptr<CoordinatorClient>> clients;
    Ops ops;
    std::mutex clients_mu;
    if (grpc_transport) {
      server =
          Must(StartGrpcServer("127.0.0.1:0", services.list(), TransportSecurity::Plaintext()));
      const std::string address = absl::StrCat("127.0.0.1:", server.port);
      // One client (channel) per worker, as separate processes would have.
      auto make = [&, address](const bpo::v1::WorkerInfo& info) -> std::string {
        ClientOptions o;
        o.address = address;
        o.transport = TransportSecurity::Plaintext();
        auto c = Must(CoordinatorClient::Connect(o));
        auto r = Must(c->Register(info));
        std::lock_guard<std::mutex> l(clients_mu);
        clients.push_back(std::move(c));
        return r.worker_id();
      };
      auto find = [&](const std::string& id) {
        std::lock_guard<std::mutex> l(clients_mu);
        for (auto& c : clients) {
          if (c->worker_id() == id) return c.get();
        }
        abort();
      };
      ops.reg = make;
      ops.lease_prompts = [&, find](const std::string& id, int n) {
        return Must(find(id)->LeasePrompts(n));
      };
      ops.submit_pairs = [&, find](bpo::v1::SubmitPairsRequest r) {
        Must(find(r.worker_id())->SubmitPairs(r));
      };
      ops.lease_pairs = [&, find](const std::string& id, int n) {
        return Must(find(id)->LeasePairs(n, absl::Seconds(60)));
      };
      ops.submit_labels = [&, find](bpo::v1::SubmitLabelsRequest r) {
        Must(find(r.worker_id())->SubmitLabels(r));
      };
      ops.fetch = [&, find](const std::string& id, int64_t t) {
        return Must(find(id)->FetchBatch(t, 0, 1));
      };
      ops.commit = [&, find](const std::string& id, int64_t t) {
        bpo::v1::CommitStepRequest r;
        r.set_step(t);
        Must(find(id)->CommitStep(r));
      };
      ops.report = [&, find](const std::string& id, uint64_t v) {
        bpo::v1::ReportSnapshotRequest r;
        r.mutable_snapshot()->set_version(v);
        r.mutable_snapshot()->set_sha256(std::string(64, 'a'));
        r.mutable_snapshot()->set_size_bytes(1);
        r.set_serve_address("127.0.0.1:1");
        auto s = find(id)->ReportSnapshot(r);
        if (!s.ok()) abort();
      };
    } else {
      RunStore* s = store.get();
      ops.reg = [s](const bpo::v1::WorkerInfo& info) {
        bpo::v1::RegisterRequest r;
        *r.mutable_worker() = info;
        return Must(s->Register(r)).worker_id();
      };
      ops.lease_prompts = [s](const std::string& id, int n) {
        bpo::v1::LeasePromptsRequest r;
        r.set_worker_id(id);
        r.set_max_prompts(n);
        return Must(s->LeasePrompts(r));
      };
      ops.submit_pairs = [s](bpo::v1::SubmitPairsRequest r) { Must(s->SubmitPairs(r)); };
      ops.lease_pairs = [s](const std::string& id, int n) {
        bpo::v1::LeasePairsRequest r;
        r.set_worker_id(id);
        r.set_max_pairs(n);
        return Must(s->LeasePairs(r));
      };
      ops.submit_labels = [s](bpo::v1::SubmitLabelsRequest r) { Must(s->SubmitLabels(r)); };
      ops.fetch = [s](const std::string& id, int64_t t) {
        bpo::v1::FetchBatchRequest r;
        r.set_worker_id(id);
        r.set_step(t);
        r.set_world_size(1);
        return Must(s->FetchBatch(r));
      };
      ops.commit = [s](const std::string& id, int64_t t) {
        bpo::v1::CommitStepRequest r;
        r.set_worker_id(id);
        r.set_step(t);
        Must(s->CommitStep(r));
      };
      ops.report = [s](const std::string& id, uint64_t v) {
        bpo::v1::ReportSnapshotRequest r;
        r.set_worker_id(id);
        r.mutable_snapshot()->set_version(v);
        r.mutable_snapshot()->set_sha256(std::string(64, 'a'));
        r.mutable_snapshot()->set_size_bytes(1);
        r.set_serve_address("127.0.0.1:1");
        Must(s->ReportSnapshot(r));
      };
    }
    state.ResumeTiming();
    RunPipeline(ops, lease, config.schedule().total_steps());
    state.PauseTiming();
    pairs += config.schedule().total_steps() * config.schedule().batch_size();
    clients.clear();
    if (server.server) server.server->Shutdown();
    store.reset();
    fs::remove_all(dir);
    state.ResumeTiming();
  }
  state.counters["pairs_per_s"] =
      benchmark::Counter(static_cast<double>(pairs), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Pipeline)
    ->ArgNames({"fsync", "grpc", "lease"})
    ->Args({0, 0, 64})
    ->Args({1, 0, 64})
    ->Args({0, 1, 64})
    ->Args({1, 1, 64})
    ->Args({1, 1, 8})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

}  // namespace
}  // namespace bpo::coordinator
