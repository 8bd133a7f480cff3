// Snapshots on the tiny Llama fixture (tests/fixtures/llama, LoRA members
// 0..2): payload round trip (decoded adapter's logits within 1e-6 of the
// directly merged ensemble's; in practice bitwise), the store and its shared
// directory, and a real gRPC server + client (chunking, cache, resume,
// verification, errors). Prints snapshot size and publish / fetch latency.
#include "snapshot/snapshot.h"

#include <ATen/core/grad_mode.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/rpc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"
#include "snapshot/snapshot_service.h"
#include "tests/testing/subprocess.h"

namespace bpo::snapshot {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Fixture(const std::string& rest) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", rest);
}

// Every directory the tests make lives under this one, removed at the end.
std::string TestRoot() {
  return absl::StrCat(::testing::TempDir(), "/bpo_snapshot_test_", getpid());
}

class RemoveTestRoot : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(TestRoot()); }
};
::testing::Environment* const kRemoveTestRoot =
    ::testing::AddGlobalTestEnvironment(new RemoveTestRoot);

// A fresh empty directory for one test.
std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(TestRoot(), "/", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

at::Tensor Ref(const std::string& name) {
  auto file = model::SafetensorsFile::Open(Fixture("llama/reference.safetensors"));
  EXPECT_TRUE(file.ok()) << file.status();
  auto t = (*file)->Tensor(name);
  EXPECT_TRUE(t.ok()) << t.status();
  return t->clone();
}

// The snapshot rewritten through model::WriteSafetensors with layer 0's
// q_proj lora_A dropped ("drop") or replaced by a [2, 128] tensor ("reshape").
std::string ParseAndRewrite(const std::string& bytes, const std::string& how) {
  const auto span =
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  auto header = model::ParseSafetensors(span, "snapshot");
  EXPECT_TRUE(header.ok()) << header.status();
  const std::string victim = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const model::TensorInfo& t : header->tensors) {
    at::Tensor x = at::empty(t.shape, at::kFloat);
    std::memcpy(x.data_ptr(), bytes.data() + header->data_offset + t.begin, t.end - t.begin);
    if (t.name == victim && how == "drop") continue;
    if (t.name == victim && how == "reshape") x = at::zeros({2, 128});
    tensors.emplace_back(t.name, x);
  }
  const std::string path = FreshDir("rewrite") + "/x.safetensors";
  EXPECT_TRUE(model::WriteSafetensors(path, tensors, header->metadata).ok());
  auto out = ReadWholeFile(path);
  EXPECT_TRUE(out.ok()) << out.status();
  return *out;
}

class SnapshotTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = model::CausalLm::Load(Fixture("llama"));
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model).release();
    std::vector<std::string> dirs;
    for (int i = 0; i < 3; ++i) dirs.push_back(Fixture(absl::StrCat("llama/lora/member", i)));
    auto lora = model::LoraEnsemble::LoadPeft(*model_, dirs);
    ASSERT_TRUE(lora.ok()) << lora.status();
    lora_ = std::move(*lora).release();
  }
  static void TearDownTestSuite() {
    delete lora_;
    delete model_;
  }
  static std::string Encode(model::MergeMode mode, bool members, uint64_t version = 1) {
    auto bytes = EncodeSnapshot(*lora_, mode, members, version, 100 * version);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return bytes.ok() ? *bytes : "";
  }
  static at::Tensor Logits(const model::LinearAdapter* adapter) {
    at::NoGradGuard no_grad;
    return model_->ForwardLogits(Ref("input_ids"), Ref("attention_mask"), adapter);
  }

  static model::CausalLm* model_;
  static model::LoraEnsemble* lora_;
};

model::CausalLm* SnapshotTest::model_ = nullptr;
model::LoraEnsemble* SnapshotTest::lora_ = nullptr;

TEST_F(SnapshotTest, RoundTripGivesTheSameLogitsInBothModes) {
  for (model::MergeMode mode : {model::MergeMode::kMeanDelta, model::MergeMode::kPeftLinear}) {
    for (bool members : {false, true}) {
      SCOPED_TRACE(absl::StrCat(model::MergeModeName(mode), members ? " with members" : ""));
      const std::string bytes = Encode(mode, members, 3);
      EXPECT_EQ(bytes, Encode(mode, members, 3)) << "encoding is deterministic";
      auto decoded = DecodeSnapshot(bytes, *model_, "snapshot-3");
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      const SnapshotMetadata& m = decoded->metadata;
      EXPECT_EQ(m.format, kSnapshotFormat);
      EXPECT_EQ(m.version, 3u);
      EXPECT_EQ(m.learner_step, 300);
      EXPECT_EQ(m.merge_mode, mode);
      EXPECT_EQ(m.rank, mode == model::MergeMode::kMeanDelta ? 12 : 4);
      EXPECT_EQ(m.members, 3);
      EXPECT_EQ(m.members_included, members);
      EXPECT_EQ(m.member_rank, 4);
      EXPECT_EQ(m.member_lora_alpha, 8.0);
      EXPECT_THAT(m.target_modules, ElementsAre("down_proj", "gate_proj", "k_proj", "o_proj",
                                                "q_proj", "up_proj", "v_proj"));
      const auto adapter_config = nlohmann::json::parse(m.adapter_config);
      EXPECT_EQ(adapter_config["lora_alpha"].get<double>(), m.rank);  // PEFT scaling 1
      EXPECT_EQ(adapter_config["r"].get<int64_t>(), m.rank);
      ASSERT_EQ(decoded->targets.size(), lora_->targets().size());

      const model::MergedLora direct = lora_->Merge(mode);
      const at::Tensor want = Logits(&direct), got = Logits(&decoded->merged);
      const double diff = (want - got).abs().max().item<double>();
      EXPECT_LE(diff, 1e-6);
      EXPECT_TRUE(at::equal(want, got)) << "not bitwise: max |diff| " << diff;

      ASSERT_EQ(decoded->member_params.size(), members ? 3u : 0u);
      for (size_t i = 0; i < decoded->member_params.size(); ++i) {
        const auto params = lora_->Parameters(static_cast<int>(i));
        ASSERT_EQ(decoded->member_params[i].size(), params.size());
        for (size_t j = 0; j < params.size(); ++j) {
          EXPECT_TRUE(at::equal(decoded->member_params[i][j], params[j].detach()));
        }
      }
    }
  }
}

TEST_F(SnapshotTest, DecodeErrorsNameTheSourceAndTheTensor) {
  const std::string bytes = Encode(model::MergeMode::kPeftLinear, false);
  // Truncated.
  auto s = DecodeSnapshot(std::string_view(bytes).substr(0, bytes.size() - 10), *model_, "snap-t");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("snap-t: "));

  // A plain PEFT adapter is not a snapshot.
  auto peft = ReadWholeFile(Fixture("llama/lora/member0/adapter_model.safetensors"));
  ASSERT_TRUE(peft.ok());
  s = DecodeSnapshot(*peft, *model_, "member0");
  EXPECT_EQ(s.status(),
            absl::InvalidArgumentError("member0: format 'pt' is not bpo-lora-snapshot/1"));

  // Another model's shapes.
  auto gemma = model::CausalLm::Load(Fixture("gemma"));
  ASSERT_TRUE(gemma.ok()) << gemma.status();
  s = DecodeSnapshot(bytes, **gemma, "snap-g");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("snap-g: tensor 'base_model.model."));

  // Rewritten with one tensor missing, then with one misshapen.
  auto file = ParseAndRewrite(bytes, "drop");
  s = DecodeSnapshot(file, *model_, "snap-d");
  EXPECT_EQ(s.status(), absl::InvalidArgumentError(
                            "snap-d: tensor 'base_model.model.model.layers.0.self_attn.q_proj."
                            "lora_A.weight' is missing"));
  file = ParseAndRewrite(bytes, "reshape");
  s = DecodeSnapshot(file, *model_, "snap-r");
  EXPECT_EQ(s.status(), absl::InvalidArgumentError(
                            "snap-r: tensor 'base_model.model.model.layers.0.self_attn.q_proj."
                            "lora_A.weight' has shape [2, 128], expected [4, 64]"));
}

TEST(SnapshotStoreTest, KeepsTheLastVersionsAndRefusesDifferentBytes) {
  SnapshotStore store({.keep_versions = 2});
  for (uint64_t v = 1; v <= 3; ++v) {
    auto info = store.Publish(v, 10 * v, absl::StrCat("payload ", v));
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->version(), v);
    EXPECT_EQ(info->learner_step(), static_cast<int64_t>(10 * v));
    EXPECT_EQ(info->size_bytes(), 9u);
    EXPECT_EQ(info->sha256(), Sha256Hex(absl::StrCat("payload ", v)));
    EXPECT_EQ(info->format(), kSnapshotFormat);
    EXPECT_GT(info->created_at().seconds(), 0);
  }
  const auto list = store.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].version(), 2u);
  EXPECT_EQ(list[1].version(), 3u);
  EXPECT_EQ(*store.Get(3)->bytes, "payload 3");
  EXPECT_EQ(store.Get(1).status(),
            absl::NotFoundError("snapshot version 1 is not held (held: 2, 3)"));
  EXPECT_EQ(SnapshotStore().Get(7).status(),
            absl::NotFoundError("snapshot version 7 is not held (held: none)"));

  // Same bytes again: the held info; other bytes: refused.
  auto again = store.Publish(3, 30, "payload 3");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->created_at().nanos(), list[1].created_at().nanos());
  auto other = store.Publish(3, 30, "payload X");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(other.status().message()),
              HasSubstr(absl::StrCat("snapshot 3 is already published with sha256 ",
                                     Sha256Hex("payload 3"))));
}

TEST_F(SnapshotTest, SharedDirectoryGetsTheFileAndItsHash) {
  const std::string dir = FreshDir("shared") + "/snapshots";  // created by the store
  SnapshotStore store({.shared_dir = dir});
  const std::string bytes = Encode(model::MergeMode::kMeanDelta, true, 5);
  auto info = store.Publish(5, 500, bytes);
  ASSERT_TRUE(info.ok()) << info.status();
  auto file = ReadWholeFile(dir + "/snapshot-5.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file, bytes);
  EXPECT_EQ(Sha256Hex(*file), info->sha256());
  EXPECT_EQ(*ReadWholeFile(dir + "/snapshot-5.sha256"),
            absl::StrCat(info->sha256(), "  snapshot-5.safetensors\n"));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_THAT(names, ElementsAre("snapshot-5.safetensors", "snapshot-5.sha256"))
      << "no temporary files left behind";
  // The shared file is a snapshot as actors load it.
  auto mapped = model::SafetensorsFile::Open(dir + "/snapshot-5.safetensors");
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(mapped->get()->header().metadata.at("version"), "5");

  // An unwritable directory fails the publish, which then is not held.
  SnapshotStore bad({.shared_dir = "/proc/bpo-no-such-dir"});
  EXPECT_FALSE(bad.Publish(1, 0, "x").ok());
  EXPECT_EQ(bad.Get(1).status().code(), absl::StatusCode::kNotFound);
}

// A server for the client's failure paths: serves `bytes` under `info` in
// chunks of `chunk` bytes, and either breaks the first stream after
// `break_after` chunks (UNAVAILABLE) or flips a byte of every payload.
class ScriptedSnapshotService final : public bpo::v1::SnapshotService::CallbackService {
 public:
  ScriptedSnapshotService(std::string bytes, bpo::v1::SnapshotInfo info, int break_after,
                          bool corrupt)
      : bytes_(std::move(bytes)),
        info_(std::move(info)),
        break_after_(break_after),
        corrupt_(corrupt) {
    if (corrupt_) bytes_[bytes_.size() / 2] ^= 0x01;
  }
  grpc::ServerUnaryReactor* GetSnapshotInfo(grpc::CallbackServerContext* ctx,
                                            const bpo::v1::GetSnapshotInfoRequest*,
                                            bpo::v1::SnapshotInfo* out) override {
    *out = info_;
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerWriteReactor<bpo::v1::SnapshotChunk>* FetchSnapshot(
      grpc::CallbackServerContext*, const bpo::v1::FetchSnapshotRequest* req) override {
    absl::MutexLock lock(&mu_);
    offsets_.push_back(req->offset());
    const int limit = offsets_.size() == 1 ? break_after_ : -1;
    return new Reactor(this, req->offset(), limit);
  }
  std::vector<uint64_t> offsets() {
    absl::MutexLock lock(&mu_);
    return offsets_;
  }

 private:
  class Reactor : public grpc::ServerWriteReactor<bpo::v1::SnapshotChunk> {
   public:
    Reactor(const ScriptedSnapshotService* s, uint64_t offset, int limit)
        : s_(s), offset_(offset), limit_(limit) {
      Next();
    }
    void OnWriteDone(bool ok) override {
      if (ok) {
        Next();
      } else {
        Finish(grpc::Status::CANCELLED);
      }
    }
    void OnDone() override { delete this; }

   private:
    void Next() {
      if (limit_ >= 0 && sent_ == limit_) {
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "scripted break"));
        return;
      }
      if (offset_ >= s_->bytes_.size()) {
        Finish(grpc::Status::OK);
        return;
      }
      chunk_.Clear();
      if (sent_ == 0) *chunk_.mutable_info() = s_->info_;
      chunk_.set_offset(offset_);
      const size_t n = std::min<size_t>(kChunk, s_->bytes_.size() - offset_);
      chunk_.set_data(s_->bytes_.substr(offset_, n));
      offset_ += n;
      ++sent_;
      StartWrite(&chunk_);
    }
    const ScriptedSnapshotService* s_;
    uint64_t offset_;
    int limit_, sent_ = 0;
    bpo::v1::SnapshotChunk chunk_;
  };

  static constexpr size_t kChunk = 1000;
  std::string bytes_;
  const bpo::v1::SnapshotInfo info_;
  const int break_after_;
  const bool corrupt_;
  absl::Mutex mu_;
  std::vector<uint64_t> offsets_ ABSL_GUARDED_BY(mu_);
};

struct Served {
  GrpcServer server;
  std::string address;
};

Served Serve(grpc::Service* service) {
  auto server = StartGrpcServer("127.0.0.1:0", {service}, TransportSecurity::Plaintext());
  EXPECT_TRUE(server.ok()) << server.status();
  Served out{std::move(*server), ""};
  out.address = absl::StrCat("127.0.0.1:", out.server.port);
  return out;
}

TEST_F(SnapshotTest, ClientFetchesInChunksCachesAndVerifies) {
  SnapshotStore store;
  const std::string bytes = Encode(model::MergeMode::kMeanDelta, true, 1);
  auto info = store.Publish(1, 100, bytes);
  ASSERT_TRUE(info.ok());
  SnapshotServiceImpl service(&store, TransportSecurity::Plaintext());
  Served s = Serve(&service);
  const std::string cache = FreshDir("cache");
  SnapshotClient client(s.address, cache,
                        {.rpc_timeout = absl::Seconds(10),
                         .max_chunk_bytes = 1000,
                         .transport = TransportSecurity::Plaintext()});

  // Cold: streamed in 1000-byte chunks, reassembled exactly, cached.
  auto got = client.Fetch(1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, bytes);
  EXPECT_EQ(service.fetches_started(), 1);
  EXPECT_EQ(*ReadWholeFile(client.CachePath(1)), bytes);
  EXPECT_THAT(client.CachedVersions(), ElementsAre(1u));

  // Warm: from the cache, no second stream.
  got = client.Fetch(1, info->sha256());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, bytes);
  EXPECT_EQ(service.fetches_started(), 1);
  EXPECT_EQ(client.stats().cache_hits, 1);

  // A corrupted cache file is detected, fetched again and repaired.
  {
    std::string bad = bytes;
    bad[bad.size() - 1] ^= 0x40;
    ASSERT_TRUE(WriteFileAtomically(client.CachePath(1), bad).ok());
  }
  got = client.Fetch(1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, bytes);
  EXPECT_EQ(service.fetches_started(), 2);
  EXPECT_EQ(client.stats().cache_rejected, 1);
  EXPECT_EQ(*ReadWholeFile(client.CachePath(1)), bytes);

  // The coordinator announced other bytes for this version.
  auto announced = client.Fetch(1, Sha256Hex("something else"));
  EXPECT_EQ(announced.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(announced.status().message()), HasSubstr(info->sha256()));

  // Unknown version.
  auto unknown = client.Fetch(9);
  EXPECT_EQ(unknown.status(),
            absl::NotFoundError(absl::StrCat("SnapshotService.GetSnapshotInfo at ", s.address,
                                             ": snapshot version 9 is not held (held: 1)")));
  auto list = client.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].sha256(), info->sha256());

  // Resume offsets: past the end is OUT_OF_RANGE, at the end one empty chunk.
  auto channel = Connect(s.address, "snapshot service", absl::Seconds(5),
                         TransportSecurity::Plaintext(), Role::kLearner);
  ASSERT_TRUE(channel.ok());
  auto stub = bpo::v1::SnapshotService::NewStub(*channel);
  for (uint64_t offset : {bytes.size() + 1, bytes.size()}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(5));
    bpo::v1::FetchSnapshotRequest req;
    req.set_version(1);
    req.set_offset(offset);
    auto reader = stub->FetchSnapshot(&ctx, req);
    std::vector<bpo::v1::SnapshotChunk> chunks;
    for (bpo::v1::SnapshotChunk c; reader->Read(&c);) chunks.push_back(c);
    const absl::Status st = FromGrpcStatus(reader->Finish());
    if (offset > bytes.size()) {
      EXPECT_EQ(st, absl::OutOfRangeError(absl::StrCat("offset ", offset, " is beyond the ",
                                                       bytes.size(), "-byte snapshot 1")));
    } else {
      ASSERT_TRUE(st.ok()) << st;
      ASSERT_EQ(chunks.size(), 1u);
      EXPECT_EQ(chunks[0].info().sha256(), info->sha256());
      EXPECT_EQ(chunks[0].offset(), bytes.size());
      EXPECT_TRUE(chunks[0].data().empty());
    }
  }
  s.server.server->Shutdown();
}

TEST_F(SnapshotTest, ServerWithOtherBytesForACachedVersionIsFetchedAgain) {
  // A restarted run's learner publishes different bytes as version 1; the
  // actor's cache still holds the old run's. The server's info wins.
  const std::string cache = FreshDir("stale");
  const std::string old_bytes = Encode(model::MergeMode::kMeanDelta, false, 1);
  const std::string new_bytes = Encode(model::MergeMode::kPeftLinear, false, 1);
  ASSERT_TRUE(WriteFileAtomically(SnapshotStore::PayloadPath(cache, 1), old_bytes).ok());
  SnapshotStore store;
  ASSERT_TRUE(store.Publish(1, 100, new_bytes).ok());
  SnapshotServiceImpl service(&store, TransportSecurity::Plaintext());
  Served s = Serve(&service);
  SnapshotClient client(s.address, cache, {.transport = TransportSecurity::Plaintext()});
  auto got = client.Fetch(1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, new_bytes);
  EXPECT_EQ(service.fetches_started(), 1);
  EXPECT_EQ(client.stats().cache_rejected, 1);
  EXPECT_EQ(*ReadWholeFile(client.CachePath(1)), new_bytes);
  s.server.server->Shutdown();
}

TEST_F(SnapshotTest, BrokenStreamResumesFromTheLastOffset) {
  const std::string bytes = Encode(model::MergeMode::kMeanDelta, false, 2);
  SnapshotStore store;
  auto info = store.Publish(2, 200, bytes);
  ASSERT_TRUE(info.ok());
  ScriptedSnapshotService service(bytes, *info, /*break_after=*/3, /*corrupt=*/false);
  Served s = Serve(&service);
  SnapshotClient client(s.address, FreshDir("resume"),
                        {.transport = TransportSecurity::Plaintext()});
  auto got = client.Fetch(2);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, bytes);
  EXPECT_THAT(service.offsets(), ElementsAre(0u, 3000u));
  EXPECT_EQ(client.stats().resumes, 1);
  EXPECT_EQ(client.stats().streams, 2);
  s.server.server->Shutdown();
}

TEST_F(SnapshotTest, CorruptPayloadIsDataLossAndNotCached) {
  const std::string bytes = Encode(model::MergeMode::kPeftLinear, false, 4);
  SnapshotStore store;
  auto info = store.Publish(4, 400, bytes);
  ASSERT_TRUE(info.ok());
  ScriptedSnapshotService service(bytes, *info, /*break_after=*/-1, /*corrupt=*/true);
  Served s = Serve(&service);
  SnapshotClient client(s.address, FreshDir("corrupt"),
                        {.transport = TransportSecurity::Plaintext()});
  auto got = client.Fetch(4);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x01;
  EXPECT_EQ(got.status(), absl::DataLossError(absl::StrCat(
                              "snapshot 4 from ", s.address, ": sha256 mismatch: expected ",
                              info->sha256(), ", got ", Sha256Hex(flipped))));
  EXPECT_FALSE(fs::exists(client.CachePath(4)));
  s.server.server->Shutdown();
}

TEST(SnapshotClientTest, UnreachableServerIsUnavailableNamingTheAddress) {
  const testing::ClosedPort closed;  // refuses connections
  const std::string address = closed.address();
  SnapshotClient client(
      address, FreshDir("unreachable"),
      {.rpc_timeout = absl::Milliseconds(300), .transport = TransportSecurity::Plaintext()});
  auto got = client.Fetch(1);
  EXPECT_EQ(got.status(),
            absl::UnavailableError(absl::StrCat("snapshot service at ", address,
                                                " is unreachable (no connection within 300ms)")));
}

// Not asserted: the numbers for the fixture and for a larger synthetic
// payload (a rank-256 7B-sized adapter is ~GBs; 64 MiB shows the throughput).
TEST_F(SnapshotTest, PrintsSizeAndLatency) {
  auto ms = [](absl::Duration d) { return absl::ToDoubleMilliseconds(d); };
  for (model::MergeMode mode : {model::MergeMode::kMeanDelta, model::MergeMode::kPeftLinear}) {
    for (bool members : {false, true}) {
      const absl::Time t0 = absl::Now();
      const std::string bytes = Encode(mode, members, 1);
      std::cout << "snapshot " << model::MergeModeName(mode) << (members ? " +members" : "") << ": "
                << bytes.size() << " bytes, encode " << ms(absl::Now() - t0) << " ms\n";
    }
  }
  const std::string fixture = Encode(model::MergeMode::kMeanDelta, false, 1);
  std::string big(64u << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i >> 12);
  for (const auto& [name, payload] :
       {std::pair<const char*, const std::string*>{"fixture", &fixture},
        {"synthetic 64 MiB", &big}}) {
    absl::Time t0 = absl::Now();
    ASSERT_TRUE(SnapshotStore().Publish(1, 0, *payload).ok());
    const absl::Duration publish_memory = absl::Now() - t0;
    SnapshotStore store({.shared_dir = FreshDir("bench_shared")});
    t0 = absl::Now();
    auto info = store.Publish(1, 0, *payload);
    const absl::Duration publish = absl::Now() - t0;
    ASSERT_TRUE(info.ok()) << info.status();
    SnapshotServiceImpl service(&store, TransportSecurity::Plaintext());
    Served s = Serve(&service);
    SnapshotClient client(s.address, FreshDir("bench_cache"),
                          {.transport = TransportSecurity::Plaintext()});
    t0 = absl::Now();
    auto cold = client.Fetch(1);
    const absl::Duration fetch_cold = absl::Now() - t0;
    ASSERT_TRUE(cold.ok()) << cold.status();
    t0 = absl::Now();
    auto warm = client.Fetch(1);
    const absl::Duration fetch_warm = absl::Now() - t0;
    ASSERT_TRUE(warm.ok()) << warm.status();
    std::cout << name << " (" << payload->size() << " bytes): publish in memory (sha256) "
              << ms(publish_memory) << " ms, with shared dir (+ 2 atomic fsynced files) "
              << ms(publish) << " ms, fetch cold (1 MiB chunks, verify, cache) " << ms(fetch_cold)
              << " ms, fetch warm (cache + verify) " << ms(fetch_warm) << " ms\n";
    s.server.server->Shutdown();
  }
}

}  // namespace
}  // namespace bpo::snapshot
