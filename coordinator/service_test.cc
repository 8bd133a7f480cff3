// The coordinator's services over real gRPC on loopback: bad requests get a
// precise status and leave the store unchanged.
#include "coordinator/service.h"

#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "absl/synchronization/notification.h"
#include "common/address_file.h"
#include "common/config.h"
#include "common/rpc.h"
#include "coordinator/client.h"

namespace bpo::coordinator {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path dir = fs::path(::testing::TempDir()) /
                         ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir);
    fs::create_directories(dir);
    config_ = DefaultRunConfig().config;
    config_.set_run_id("svc");
    config_.mutable_schedule()->set_total_steps(4);
    config_.mutable_schedule()->set_phases(2);
    config_.mutable_schedule()->set_batch_size(2);
    config_.mutable_schedule()->set_pairs_per_phase(4);
    config_.mutable_coordinator()->set_actor_lease_seconds(actor_lease_seconds_);
    dir_ = dir.string();
    std::vector<bpo::v1::Prompt> prompts(10);
    for (int i = 0; i < 10; ++i) prompts[i].set_text(absl::StrCat("prompt ", i));
    auto store =
        RunStore::Open(config_, prompts, {.path = (dir / "s.db").string(), .fsync = false});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto m = RpcMetrics::Create(&registry_);
    ASSERT_TRUE(m.ok());
    metrics_ = std::move(*m);
    services_ = std::make_unique<CoordinatorServices>(store_.get(), metrics_.get(),
                                                      TransportSecurity::Plaintext());
    auto server = StartGrpcServer("127.0.0.1:0", services_->list(), TransportSecurity::Plaintext(),
                                  kMaxMessage);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    address_ = absl::StrCat("127.0.0.1:", server_.port);
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }
  void TearDown() override { server_.server->Shutdown(); }

  // A client of the plaintext server.
  std::unique_ptr<CoordinatorClient> Client() {
    ClientOptions o;
    o.address = address_;
    o.transport = TransportSecurity::Plaintext();
    o.retry_for = absl::Seconds(5);
    auto client = CoordinatorClient::Connect(o);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }
  // A client registered as worker `name`.
  std::unique_ptr<CoordinatorClient> Worker(bpo::v1::WorkerKind kind, const std::string& name) {
    std::unique_ptr<CoordinatorClient> client = Client();
    if (client == nullptr) return nullptr;
    bpo::v1::WorkerInfo info;
    info.set_kind(kind);
    info.set_name(name);
    if (kind == bpo::v1::WORKER_KIND_LEARNER) info.set_world_size(1);
    auto registered = client->Register(info);
    EXPECT_TRUE(registered.ok()) << registered.status();
    return client;
  }

  static constexpr int kMaxMessage = 1 << 20;
  int actor_lease_seconds_ = 120;
  std::string dir_;
  bpo::v1::RunConfig config_;
  metrics::Registry registry_;
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<RpcMetrics> metrics_;
  std::unique_ptr<CoordinatorServices> services_;
  GrpcServer server_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ServiceTest, OversizedMalformedAndUnknownRequestsAreRefusedPrecisely) {
  auto client = Worker(bpo::v1::WORKER_KIND_ACTOR, "a");
  ASSERT_NE(client, nullptr);

  // Oversized: refused by gRPC before the handler runs.
  auto stub = bpo::v1::PromptQueue::NewStub(channel_);
  bpo::v1::SubmitPairsRequest big;
  big.set_worker_id(client->worker_id());
  big.add_pairs()->mutable_a()->set_text(std::string(kMaxMessage + 10, 'x'));
  grpc::ClientContext c1;
  bpo::v1::SubmitPairsResponse out;
  grpc::Status s = stub->SubmitPairs(&c1, big, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();

  // Malformed bytes: the server cannot parse the message.
  grpc::GenericStub generic(channel_);
  grpc::ClientContext c2;
  grpc::Slice junk("\xff\xff\xff\xff\x0f", 5);
  grpc::ByteBuffer request(&junk, 1), reply;
  grpc::Status parsed;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  generic.UnaryCall(&c2, "/bpo.v1.PromptQueue/SubmitPairs", grpc::StubOptions(), &request, &reply,
                    [&](grpc::Status st) {
                      std::lock_guard<std::mutex> l(mu);
                      parsed = st;
                      done = true;
                      cv.notify_one();
                    });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done; });
  }
  EXPECT_NE(parsed.error_code(), grpc::StatusCode::OK);

  // An unknown worker, a wrong kind.
  bpo::v1::LeasePromptsRequest lease;
  lease.set_worker_id("ghost");
  grpc::ClientContext c3;
  bpo::v1::LeasePromptsResponse lease_out;
  s = stub->LeasePrompts(&c3, lease, &lease_out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown worker_id 'ghost'"));
  auto labels = client->LeasePairs(1, absl::Seconds(10));
  EXPECT_EQ(labels.status().code(), absl::StatusCode::kPermissionDenied);

  // A learner of the wrong world size.
  bpo::v1::WorkerInfo learner;
  learner.set_kind(bpo::v1::WORKER_KIND_LEARNER);
  learner.set_name("l");
  learner.set_world_size(3);
  auto lc = Client();
  ASSERT_NE(lc, nullptr);
  EXPECT_EQ(lc->Register(learner).status().code(), absl::StatusCode::kFailedPrecondition);

  // Nothing changed.
  auto c = store_->Counters();
  for (const auto& [state, n] : c->pairs) EXPECT_EQ(n, 0) << PairStateName(state);
  // The failures are counted by method and code.
  const std::string text = registry_.Render();
  EXPECT_THAT(
      text, HasSubstr("bpo_coordinator_rpcs_total{code=\"NOT_FOUND\",method=\"LeasePrompts\"} 1"));
}

TEST_F(ServiceTest, ClientRetriesWhileTheCoordinatorIsDown) {
  ClientOptions o;
  o.address = address_;
  o.transport = TransportSecurity::Plaintext();
  o.retry_for = absl::Seconds(20);
  auto client = CoordinatorClient::Connect(o);
  ASSERT_TRUE(client.ok());
  server_.server->Shutdown();
  server_.server->Wait();
  // Bring it back on the same port after a second.
  std::thread restart([&] {
    absl::SleepFor(absl::Seconds(1));
    auto again =
        StartGrpcServer(address_, services_->list(), TransportSecurity::Plaintext(), kMaxMessage);
    ASSERT_TRUE(again.ok()) << again.status();
    server_ = std::move(*again);
  });
  auto status = (*client)->Status();
  restart.join();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->run_id(), "svc");
}

// A coordinator that restarts listens on a new port (port 0) and rewrites its
// address file; a client with the file endpoint follows it.
TEST_F(ServiceTest, AClientFollowsTheAddressFileWhenTheCoordinatorMoves) {
  const std::string file = dir_ + "/addresses/coordinator.json";
  ClientOptions o;
  o.address = "file:" + file;
  o.transport = TransportSecurity::Plaintext();
  o.retry_for = absl::Milliseconds(500);
  // Not written yet: UNAVAILABLE naming the file.
  auto early = CoordinatorClient::Connect(o);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(early.status().message()), HasSubstr(file + " does not exist yet"));

  ASSERT_TRUE(WriteAddressFile(file, {{"grpc", address_}}).ok());
  o.retry_for = absl::Seconds(30);
  auto client = CoordinatorClient::Connect(o);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->resolved_address(), address_);
  ASSERT_TRUE((*client)->Status().ok());

  // The coordinator moves: a new server on a new port, the old one gone.
  auto moved = StartGrpcServer("127.0.0.1:0", services_->list(), TransportSecurity::Plaintext(),
                               kMaxMessage);
  ASSERT_TRUE(moved.ok()) << moved.status();
  server_.server->Shutdown();
  server_ = std::move(*moved);
  const std::string new_address = absl::StrCat("127.0.0.1:", server_.port);
  ASSERT_TRUE(WriteAddressFile(file, {{"grpc", new_address}}).ok());
  absl::StatusOr<bpo::v1::RunStatus> status = (*client)->Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ((*client)->resolved_address(), new_address);
}

class StallTest : public ServiceTest {
 protected:
  void SetUp() override {
    actor_lease_seconds_ = 3;
    ServiceTest::SetUp();
  }
};

// Heartbeats extend a lease while the work loop makes progress, and stop
// when it stalls: the lease then expires and its prompts go back.
TEST_F(StallTest, LeasesFollowProgressAndAStalledWorkersLeasesExpire) {
  auto client = Worker(bpo::v1::WORKER_KIND_ACTOR, "a");
  ASSERT_NE(client, nullptr);
  // A learner publishes snapshot 0: the first phase opens.
  auto learner = Worker(bpo::v1::WORKER_KIND_LEARNER, "learner");
  ASSERT_NE(learner, nullptr);
  bpo::v1::ReportSnapshotRequest snapshot;
  snapshot.mutable_snapshot()->set_version(0);
  snapshot.mutable_snapshot()->set_sha256(std::string(64, 'a'));
  snapshot.mutable_snapshot()->set_size_bytes(1024);
  snapshot.set_path(LimitsFromConfig(store_->config()).snapshot_dir + "/snapshot-0");
  absl::Status reported = learner->ReportSnapshot(snapshot);
  ASSERT_TRUE(reported.ok()) << reported;
  auto lease = client->LeasePrompts(2);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_EQ(lease->work_size(), 2);
  client->HoldLease(lease->lease().lease_id());
  absl::Notification stalled;
  client->StartHeartbeats(absl::Milliseconds(100), absl::Seconds(2),
                          [&](absl::Duration) { stalled.Notify(); });

  // Progress for twice the lease's 3 s: the lease is extended.
  for (const absl::Time until = absl::Now() + absl::Seconds(6); absl::Now() < until;) {
    client->MarkProgress();
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_FALSE(stalled.HasBeenNotified());
  EXPECT_EQ(*store_->ExpireLeases(), 0);

  // No progress: after 2 s the worker is told it stalled, and 3 s later its
  // lease expires.
  ASSERT_TRUE(stalled.WaitForNotificationWithTimeout(absl::Seconds(30)));
  int64_t expired = 0;
  for (const absl::Time until = absl::Now() + absl::Seconds(30);
       expired == 0 && absl::Now() < until; absl::SleepFor(absl::Milliseconds(100))) {
    expired = *store_->ExpireLeases();
  }
  EXPECT_EQ(expired, 1);
  // Its prompts are back: all of the phase's 4 can be leased.
  auto again = client->LeasePrompts(4);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->work_size(), 4);
}

}  // namespace
}  // namespace bpo::coordinator
