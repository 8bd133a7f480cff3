// Snapshot publish + fetch against the bytes moved, next to the loopback
// bandwidth measured in the same process:
//   BM_Publish        SnapshotStore::Publish (sha256 + keep; no shared dir)
//   BM_Fetch          SnapshotClient::Fetch over gRPC on loopback, cache
//                     bypassed: chunked stream + size and sha256 check
//   BM_LoopbackTcp    the same bytes through one plain TCP socket (the floor)
// Sizes 4, 64 and 256 MiB (a rank-8 LoRA of a 2B model is ~20 MiB in fp32;
// rank 256 on all linear layers several hundred).
//   build/bin/snapshot_benchmark --benchmark_repetitions=3 --benchmark_report_aggregates_only
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/rpc.h"
#include "snapshot/snapshot.h"
#include "snapshot/snapshot_service.h"

namespace bpo::snapshot {
namespace {

std::string Payload(int64_t bytes) {
  std::string s(static_cast<size_t>(bytes), '\0');
  std::mt19937_64 rng(1);
  for (size_t i = 0; i + 8 <= s.size(); i += 8) {
    const uint64_t v = rng();
    memcpy(&s[i], &v, 8);
  }
  return s;
}

void BM_Publish(benchmark::State& state) {
  const std::string bytes = Payload(state.range(0) << 20);
  uint64_t v = 0;
  SnapshotStore store;
  for (auto _ : state) {
    auto info = store.Publish(v++, 0, bytes);
    if (!info.ok()) state.SkipWithError(std::string(info.status().message()).c_str());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}

void BM_Fetch(benchmark::State& state) {
  const std::string bytes = Payload(state.range(0) << 20);
  SnapshotStore store;
  auto info = store.Publish(0, 0, bytes);
  SnapshotServiceImpl service(&store, TransportSecurity::Plaintext());
  auto server = StartGrpcServer("127.0.0.1:0", {&service}, TransportSecurity::Plaintext());
  if (!server.ok()) {
    state.SkipWithError("cannot serve");
    return;
  }
  const std::string address = absl::StrCat("127.0.0.1:", server->port);
  const std::string cache =
      std::filesystem::temp_directory_path() / absl::StrCat("bpo_snapshot_bench_", getpid());
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove_all(cache);
    SnapshotClient client(
        address, cache,
        {.transport = TransportSecurity::Plaintext()});  // a fresh actor: nothing cached
    state.ResumeTiming();
    auto got = client.Fetch(0, info->sha256());
    if (!got.ok() || got->size() != bytes.size()) state.SkipWithError("fetch failed");
  }
  std::filesystem::remove_all(cache);
  server->server->Shutdown();
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}

void BM_LoopbackTcp(benchmark::State& state) {
  const std::string bytes = Payload(state.range(0) << 20);
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  listen(listener, 1);
  for (auto _ : state) {
    std::thread sender([&] {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      size_t sent = 0;
      while (sent < bytes.size()) {
        const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, 0);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      close(fd);
    });
    const int fd = accept(listener, nullptr, nullptr);
    std::string buf(1 << 20, '\0');
    size_t got = 0;
    while (true) {
      const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    close(fd);
    sender.join();
    if (got != bytes.size()) state.SkipWithError("short read");
  }
  close(listener);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}

BENCHMARK(BM_Publish)->Arg(4)->Arg(64)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Fetch)->Arg(4)->Arg(64)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoopbackTcp)->Arg(4)->Arg(64)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace bpo::snapshot
