// Hostile requests over real gRPC with mutual TLS on loopback (issue 12):
// each is refused with a precise status, and the run's status and store
// counters are the same before and after. Every client holds a certificate
// of the test's CA for the role and name it is given. docs/security.md lists
// which test shows which limit.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "common/config.h"
#include "common/files.h"
#include "common/rpc.h"
#include "coordinator/client.h"
#include "coordinator/service.h"
#include "tests/testing/pki.h"

namespace bpo::coordinator {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int kVocab = 1000;
constexpr int kMaxNewTokens = 8;

class ServiceAttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_ = DefaultRunConfig().config;
    config_.set_run_id("attack");
    config_.mutable_schedule()->set_total_steps(4);
    config_.mutable_schedule()->set_phases(2);
    config_.mutable_schedule()->set_batch_size(2);
    config_.mutable_schedule()->set_pairs_per_phase(4);
    config_.mutable_sampling()->set_max_new_tokens(kMaxNewTokens);
    config_.mutable_learner()->set_snapshot_dir((dir_ / "snapshots").string());
    config_.mutable_coordinator()->set_vocab_size(kVocab);
    std::vector<bpo::v1::Prompt> prompts(10);
    for (int i = 0; i < 10; ++i) prompts[i].set_text(absl::StrCat("prompt ", i));
    auto store =
        RunStore::Open(config_, prompts, {.path = (dir_ / "s.db").string(), .fsync = false});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto m = RpcMetrics::Create(&registry_);
    ASSERT_TRUE(m.ok());
    metrics_ = std::move(*m);
    auto pki = bpo::testing::TestPki::Create((dir_ / "pki").string());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto transport = pki_.Transport(Role::kCoordinator, "coordinator");
    ASSERT_TRUE(transport.ok()) << transport.status();
    // One external service holds a bearer token instead of a certificate.
    token_ = "0123456789abcdef0123456789abcdef";
    transport->tokens[Sha256Hex(token_)] = Identity{Role::kAnnotator, "human-service"};
    services_ = std::make_unique<CoordinatorServices>(store_.get(), metrics_.get(), *transport);
    auto server = StartGrpcServer("127.0.0.1:0", services_->list(), *transport, 64 << 20);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    address_ = absl::StrCat("127.0.0.1:", server_.port);
  }
  void TearDown() override { server_.server->Shutdown(); }

  TransportSecurity As(Role role, const std::string& name) {
    auto t = pki_.Transport(role, name);
    EXPECT_TRUE(t.ok()) << t.status();
    return *t;
  }
  std::unique_ptr<CoordinatorClient> Connect(const TransportSecurity& transport) {
    ClientOptions o;
    o.address = address_;
    o.retry_for = absl::Seconds(5);
    o.transport = transport;
    auto c = CoordinatorClient::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }
  // A client that holds an observer certificate.
  std::unique_ptr<CoordinatorClient> Connect() { return Connect(As(Role::kObserver, "observer")); }
  static Role RoleOf(bpo::v1::WorkerKind kind) {
    return kind == bpo::v1::WORKER_KIND_LEARNER ? Role::kLearner
           : kind == bpo::v1::WORKER_KIND_ACTOR ? Role::kActor
                                                : Role::kAnnotator;
  }
  // A raw channel for hand-made requests, as `role:name`.
  std::shared_ptr<grpc::Channel> Channel(Role role, const std::string& name) {
    auto channel =
        bpo::Connect(address_, "coordinator", absl::Seconds(5), As(role, name), Role::kCoordinator);
    EXPECT_TRUE(channel.ok()) << channel.status();
    return *channel;
  }
  // Registers `name` as a worker of `kind`, holding the certificate role:name.
  std::unique_ptr<CoordinatorClient> Worker(bpo::v1::WorkerKind kind, const std::string& name) {
    auto c = Connect(As(RoleOf(kind), name));
    bpo::v1::WorkerInfo info;
    info.set_kind(kind);
    info.set_name(name);
    if (kind == bpo::v1::WORKER_KIND_LEARNER) info.set_world_size(1);
    if (kind == bpo::v1::WORKER_KIND_ANNOTATOR)
      info.set_annotator_kind(bpo::v1::ANNOTATOR_KIND_RULE);
    auto r = c->Register(info);
    EXPECT_TRUE(r.ok()) << r.status();
    return c;
  }
  bpo::v1::ReportSnapshotRequest Snapshot(uint64_t version) {
    bpo::v1::ReportSnapshotRequest r;
    r.mutable_snapshot()->set_version(version);
    r.mutable_snapshot()->set_sha256(std::string(64, 'a'));
    r.mutable_snapshot()->set_size_bytes(1024);
    r.set_path((dir_ / "snapshots" / absl::StrCat("snapshot-", version)).string());
    return r;
  }
  // Registers a learner, publishes snapshot 0 and leases prompts to `actor`.
  bpo::v1::LeasePromptsResponse OpenPhaseAndLease(CoordinatorClient* actor, int n) {
    learner_ = Worker(bpo::v1::WORKER_KIND_LEARNER, "learner");
    EXPECT_TRUE(learner_->ReportSnapshot(Snapshot(0)).ok());
    auto lease = actor->LeasePrompts(n);
    EXPECT_TRUE(lease.ok()) << lease.status();
    EXPECT_EQ(lease->work_size(), n);
    return *lease;
  }
  static bpo::v1::SampledPair Pair(const bpo::v1::LeasePromptsResponse& lease, int i) {
    bpo::v1::SampledPair p;
    p.set_pair_id(lease.work(i).pair_id());
    p.set_behavior_version(lease.snapshot_version());
    p.add_prompt_token_ids(5);
    p.mutable_a()->add_token_ids(1);
    p.mutable_b()->add_token_ids(2);
    return p;
  }
  // What an attack must leave unchanged: the run's status and counters.
  std::string Fingerprint() {
    auto s = store_->Status();
    EXPECT_TRUE(s.ok()) << s.status();
    bpo::v1::RunStatus status = *s;
    for (auto& w : *status.mutable_workers()) w.clear_last_seen();
    auto c = store_->Counters();
    std::string out = status.SerializeAsString();
    for (const auto& [state, n] : c->pairs) absl::StrAppend(&out, "|", n);
    absl::StrAppend(&out, "|", c->prompt_leases_active, "|", c->label_leases_active, "|",
                    c->leases_granted, "|", c->steps_committed);
    return out;
  }

  fs::path dir_;
  bpo::testing::TestPki pki_;
  std::string token_;
  bpo::v1::RunConfig config_;
  metrics::Registry registry_;
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<RpcMetrics> metrics_;
  std::unique_ptr<CoordinatorServices> services_;
  GrpcServer server_;
  std::string address_;
  std::unique_ptr<CoordinatorClient> learner_;
};

TEST_F(ServiceAttackTest, RegisterWithAnUnknownKindIsRefusedAndTheCoordinatorLives) {
  const std::string before = Fingerprint();
  for (int kind : {-1, -2147483647, 4, 99}) {
    bpo::v1::WorkerInfo info;
    info.set_kind(static_cast<bpo::v1::WorkerKind>(kind));
    info.set_name(absl::StrCat("evil", kind));
    auto r = Connect()->Register(info);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << kind;
    EXPECT_THAT(r.status().message(), HasSubstr("is not a worker kind"));
  }
  bpo::v1::WorkerInfo annotator;
  annotator.set_kind(bpo::v1::WORKER_KIND_ANNOTATOR);
  annotator.set_name("evil-annotator");
  annotator.set_annotator_kind(static_cast<bpo::v1::AnnotatorKind>(-5));
  EXPECT_EQ(Connect()->Register(annotator).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fingerprint(), before);
  EXPECT_TRUE(Connect()->Status().ok());  // still serving
}

TEST_F(ServiceAttackTest, PairsWithOutOfVocabularyOrOverlongTokensAreRefused) {
  auto actor = Worker(bpo::v1::WORKER_KIND_ACTOR, "actor");
  const auto lease = OpenPhaseAndLease(actor.get(), 2);
  const std::string before = Fingerprint();
  // Each pair out of bounds is REJECTED with INVALID_ARGUMENT on its own.
  auto submit = [&](bpo::v1::SampledPair pair) {
    bpo::v1::SubmitPairsRequest r;
    r.set_lease_id(lease.lease().lease_id());
    *r.add_pairs() = std::move(pair);
    auto out = actor->SubmitPairs(r);
    EXPECT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->results_size(), 1);
    return out->results(0);
  };
  auto expect_refused = [&](bpo::v1::SampledPair pair, const std::string& why) {
    bpo::v1::ItemStatus item = submit(std::move(pair));
    EXPECT_EQ(item.outcome(), bpo::v1::ItemStatus::REJECTED) << why;
    EXPECT_EQ(item.code(), static_cast<int>(absl::StatusCode::kInvalidArgument)) << why;
    EXPECT_THAT(item.message(), HasSubstr(why));
  };
  bpo::v1::SampledPair huge = Pair(lease, 0);
  huge.mutable_a()->set_token_ids(0, 1000000000);
  expect_refused(huge, "a.token_ids[0] = 1000000000 is outside the vocabulary [0, 1000)");
  bpo::v1::SampledPair negative = Pair(lease, 0);
  negative.set_prompt_token_ids(0, -1);
  expect_refused(negative, "prompt_token_ids[0] = -1 is outside the vocabulary");
  bpo::v1::SampledPair edge = Pair(lease, 0);
  edge.mutable_b()->set_token_ids(0, kVocab);
  expect_refused(edge, "b.token_ids[0] = 1000 is outside");
  bpo::v1::SampledPair long_response = Pair(lease, 0);
  for (int i = 0; i < kMaxNewTokens + 1; ++i) long_response.mutable_b()->add_token_ids(3);
  expect_refused(long_response, "b.token_ids has 10 tokens; at most 9");
  bpo::v1::SampledPair long_prompt = Pair(lease, 0);
  for (int i = 0; i < 4096; ++i) long_prompt.add_prompt_token_ids(3);
  expect_refused(long_prompt, "prompt_token_ids has 4097 tokens; at most 4096");
  bpo::v1::SampledPair nan = Pair(lease, 0);
  nan.mutable_a()->set_behavior_logprob(std::nan(""));
  expect_refused(nan, "a.behavior_logprob nan is not finite");
  EXPECT_EQ(Fingerprint(), before);
  // Within bounds, the same pair is accepted, next to a refused one.
  bpo::v1::SubmitPairsRequest mixed;
  mixed.set_lease_id(lease.lease().lease_id());
  *mixed.add_pairs() = Pair(lease, 0);
  mixed.mutable_pairs(0)->mutable_a()->set_token_ids(0, kVocab - 1);
  *mixed.add_pairs() = Pair(lease, 1);
  mixed.mutable_pairs(1)->mutable_a()->set_token_ids(0, -5);
  auto r = actor->SubmitPairs(mixed);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->results_size(), 2);
  for (const auto& item : r->results()) {
    EXPECT_EQ(item.outcome(), item.id() == lease.work(0).pair_id() ? bpo::v1::ItemStatus::ACCEPTED
                                                                   : bpo::v1::ItemStatus::REJECTED);
  }
  EXPECT_EQ(store_->Counters()->pairs[PairState::kSampled], 1);
}

TEST_F(ServiceAttackTest, OversizedNamesListsAndCountsAreRefused) {
  auto actor = Worker(bpo::v1::WORKER_KIND_ACTOR, "actor");
  const std::string before = Fingerprint();
  bpo::v1::WorkerInfo big;
  big.set_kind(bpo::v1::WORKER_KIND_ACTOR);
  big.set_name(std::string(257, 'n'));
  auto r = Connect()->Register(big);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("worker.name is 257 bytes; at most 256"));
  big.set_name(std::string(40 << 20, 'n'));  // the 40 MB name that broke GetRunStatus
  EXPECT_EQ(Connect()->Register(big).status().code(), absl::StatusCode::kInvalidArgument);

  auto channel = Channel(Role::kActor, "actor");
  auto coordinator = bpo::v1::Coordinator::NewStub(channel);
  bpo::v1::HeartbeatRequest hb;
  hb.set_worker_id(actor->worker_id());
  for (int i = 0; i < 1025; ++i) hb.add_lease_ids(absl::StrCat("lp", i));
  grpc::ClientContext c1;
  bpo::v1::HeartbeatResponse hb_out;
  grpc::Status s = coordinator->Heartbeat(&c1, hb, &hb_out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("lease_ids has 1025 items; at most 1024"));

  auto prompts = bpo::v1::PromptQueue::NewStub(channel);
  for (int n : {-1, 4097, std::numeric_limits<int>::max()}) {
    bpo::v1::LeasePromptsRequest lp;
    lp.set_worker_id(actor->worker_id());
    lp.set_max_prompts(n);
    grpc::ClientContext c2;
    bpo::v1::LeasePromptsResponse lp_out;
    EXPECT_EQ(prompts->LeasePrompts(&c2, lp, &lp_out).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << n;
  }
  EXPECT_EQ(Fingerprint(), before);
  auto status = Connect()->Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->workers_size(), 1);
}

TEST_F(ServiceAttackTest, AWorkerCannotTakeOverAnotherWorkersNameLeasesOrPairs) {
  auto actor = Worker(bpo::v1::WORKER_KIND_ACTOR, "actor-a");
  auto thief = Worker(bpo::v1::WORKER_KIND_ACTOR, "actor-b");
  const auto lease = OpenPhaseAndLease(actor.get(), 2);
  const std::string before = Fingerprint();

  // Re-registering under the actor's name, by another actor identity or by a
  // learner identity.
  bpo::v1::WorkerInfo same_name;
  same_name.set_kind(bpo::v1::WORKER_KIND_ACTOR);
  same_name.set_name("actor-a");
  auto r = Connect(As(Role::kActor, "actor-b"))->Register(same_name);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(r.status().message(), HasSubstr("belongs to identity 'actor:actor-a'"));
  bpo::v1::WorkerInfo as_learner;
  as_learner.set_kind(bpo::v1::WORKER_KIND_LEARNER);
  as_learner.set_name("actor-a");
  as_learner.set_world_size(1);
  r = Connect(As(Role::kLearner, "learner-x"))->Register(as_learner);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(r.status().message(), HasSubstr("belongs to identity 'actor:actor-a'"));

  // Using the actor's worker id from another identity.
  auto channel = Channel(Role::kActor, "actor-b");
  auto prompts = bpo::v1::PromptQueue::NewStub(channel);
  {
    bpo::v1::LeasePromptsRequest steal;
    steal.set_worker_id(actor->worker_id());
    steal.set_max_prompts(1);
    grpc::ClientContext c0;
    bpo::v1::LeasePromptsResponse out;
    grpc::Status s0 = prompts->LeasePrompts(&c0, steal, &out);
    EXPECT_EQ(s0.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s0.error_message(), HasSubstr("belongs to identity 'actor:actor-a'"));
  }

  // Returning the actor's prompts, or reporting them dropped.
  bpo::v1::ReturnPromptsRequest back;
  back.set_worker_id(thief->worker_id());
  back.set_lease_id(lease.lease().lease_id());
  back.add_pair_ids(lease.work(0).pair_id());
  grpc::ClientContext c1;
  bpo::v1::ReturnPromptsResponse back_out;
  grpc::Status s = prompts->ReturnPrompts(&c1, back, &back_out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("is not a prompt lease of worker"));
  bpo::v1::SubmitPairsRequest drop;
  drop.set_lease_id(lease.lease().lease_id());
  drop.add_dropped_pair_ids(lease.work(0).pair_id());
  auto dropped = thief->SubmitPairs(drop);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(dropped->results(0).outcome(), bpo::v1::ItemStatus::REJECTED);
  // A queued pair nobody holds cannot be reported dropped either.
  const auto queued = store_->PairIds(PairState::kQueued);
  ASSERT_FALSE(queued->empty());
  bpo::v1::SubmitPairsRequest drop_queued;
  drop_queued.add_dropped_pair_ids(queued->front());
  auto q = thief->SubmitPairs(drop_queued);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->results(0).outcome(), bpo::v1::ItemStatus::REJECTED);
  EXPECT_EQ(q->results(0).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Fingerprint(), before);

  // Labels only for pairs leased to the annotator.
  bpo::v1::SubmitPairsRequest sub;
  sub.set_lease_id(lease.lease().lease_id());
  *sub.add_pairs() = Pair(lease, 0);
  ASSERT_TRUE(actor->SubmitPairs(sub).ok());
  auto annotator = Worker(bpo::v1::WORKER_KIND_ANNOTATOR, "rater");
  const std::string sampled = Fingerprint();
  bpo::v1::SubmitLabelsRequest label;
  auto* l = label.add_labels();
  l->set_pair_id(lease.work(0).pair_id());
  l->set_choice(bpo::v1::CHOICE_A);
  l->set_provenance("rule:x");
  auto labelled = annotator->SubmitLabels(label);
  ASSERT_TRUE(labelled.ok()) << labelled.status();
  EXPECT_EQ(labelled->results(0).outcome(), bpo::v1::ItemStatus::REJECTED);
  EXPECT_EQ(labelled->results(0).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Fingerprint(), sampled);
  // An unknown choice is refused before the store.
  l->set_choice(static_cast<bpo::v1::Choice>(-3));
  EXPECT_EQ(annotator->SubmitLabels(label).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ServiceAttackTest, SnapshotPathsSizesAndAbsurdLossesAreRefused) {
  auto learner = Worker(bpo::v1::WORKER_KIND_LEARNER, "learner");
  const std::string before = Fingerprint();
  for (const std::string& path :
       {std::string("/dev/zero"), (dir_ / "snapshots" / ".." / "s.db").string(),
        (dir_ / "snapshots").string(), std::string("relative/snapshot-0")}) {
    auto r = Snapshot(0);
    r.set_path(path);
    absl::Status s = learner->ReportSnapshot(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << path;
    EXPECT_THAT(s.message(), HasSubstr("is not under the run's snapshot directory"));
  }
  auto big = Snapshot(0);
  big.mutable_snapshot()->set_size_bytes(uint64_t{1} << 40);
  EXPECT_EQ(learner->ReportSnapshot(big).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fingerprint(), before);

  bpo::v1::CommitStepRequest commit;
  commit.set_step(0);
  for (double loss : {-1e300, std::nan(""), std::numeric_limits<double>::infinity()}) {
    (*commit.mutable_metrics())["loss"] = loss;
    auto r = learner->CommitStep(commit);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << loss;
    EXPECT_THAT(r.status().message(), HasSubstr("metric 'loss'"));
  }
  commit.set_step(-1);
  commit.clear_metrics();
  EXPECT_EQ(learner->CommitStep(commit).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fingerprint(), before);
  // A path under the directory is accepted.
  EXPECT_TRUE(learner->ReportSnapshot(Snapshot(0)).ok());
}

TEST_F(ServiceAttackTest, OnlyTheRightRoleMayCallEachService) {
  auto actor = Worker(bpo::v1::WORKER_KIND_ACTOR, "actor");
  const auto lease = OpenPhaseAndLease(actor.get(), 2);
  const std::string before = Fingerprint();
  // An actor identity registering as a learner or an annotator.
  for (auto kind : {bpo::v1::WORKER_KIND_LEARNER, bpo::v1::WORKER_KIND_ANNOTATOR}) {
    bpo::v1::WorkerInfo info;
    info.set_kind(kind);
    info.set_name("sneaky");
    info.set_world_size(1);
    info.set_annotator_kind(bpo::v1::ANNOTATOR_KIND_RULE);
    auto r = Connect(As(Role::kActor, "sneaky"))->Register(info);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << kind;
    EXPECT_THAT(r.status().message(), HasSubstr("the caller is actor:sneaky"));
  }
  // An actor reporting a snapshot, committing a step, fetching a batch or
  // labelling, with its own worker id.
  auto channel = Channel(Role::kActor, "actor");
  auto feed = bpo::v1::LearnerFeed::NewStub(channel);
  bpo::v1::ReportSnapshotRequest snap = Snapshot(1);
  snap.set_worker_id(actor->worker_id());
  grpc::ClientContext c1;
  bpo::v1::ReportSnapshotResponse snap_out;
  grpc::Status s = feed->ReportSnapshot(&c1, snap, &snap_out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("LearnerFeed.ReportSnapshot is only for learner"));
  bpo::v1::CommitStepRequest commit;
  commit.set_worker_id(actor->worker_id());
  grpc::ClientContext c2;
  bpo::v1::CommitStepResponse commit_out;
  EXPECT_EQ(feed->CommitStep(&c2, commit, &commit_out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  auto queue = bpo::v1::AnnotationQueue::NewStub(channel);
  bpo::v1::SubmitLabelsRequest label;
  label.set_worker_id(actor->worker_id());
  auto* l = label.add_labels();
  l->set_pair_id(lease.work(0).pair_id());
  l->set_choice(bpo::v1::CHOICE_A);
  grpc::ClientContext c3;
  bpo::v1::SubmitLabelsResponse label_out;
  EXPECT_EQ(queue->SubmitLabels(&c3, label, &label_out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // An observer may read the run's status and nothing else.
  EXPECT_TRUE(Connect()->Status().ok());
  EXPECT_EQ(Fingerprint(), before);
}

TEST_F(ServiceAttackTest, ClientsWithoutACertificateOfTheRunsCaAreRefused) {
  const std::string before = Fingerprint();
  // No client certificate, no token: the call fails before any handler.
  TransportSecurity anonymous = pki_.TokenClient("");
  auto channel =
      bpo::Connect(address_, "coordinator", absl::Seconds(2), anonymous, Role::kCoordinator);
  if (channel.ok()) {
    auto stub = bpo::v1::Coordinator::NewStub(*channel);
    grpc::ClientContext c;
    bpo::v1::RunStatus out;
    EXPECT_EQ(stub->GetRunStatus(&c, {}, &out).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // A certificate of another CA does not connect.
  auto other = bpo::testing::TestPki::Create((dir_ / "other-pki").string());
  ASSERT_TRUE(other.ok()) << other.status();
  auto stranger = other->Transport(Role::kLearner, "learner");
  ASSERT_TRUE(stranger.ok());
  EXPECT_EQ(bpo::Connect(address_, "coordinator", absl::Seconds(1), *stranger, Role::kCoordinator)
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  // Plaintext to a TLS server does not connect either.
  EXPECT_EQ(bpo::Connect(address_, "coordinator", absl::Seconds(1), TransportSecurity::Plaintext(),
                         Role::kCoordinator)
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  // A server that is not the coordinator: clients check the peer's role.
  auto actor_server = As(Role::kActor, "impostor");
  CoordinatorServices impostor(store_.get(), metrics_.get(), actor_server);
  auto served = StartGrpcServer("127.0.0.1:0", impostor.list(), actor_server);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(bpo::Connect(absl::StrCat("127.0.0.1:", served->port), "coordinator", absl::Seconds(1),
                         As(Role::kActor, "actor"), Role::kCoordinator)
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  served->server->Shutdown();
  EXPECT_EQ(Fingerprint(), before);
}

TEST_F(ServiceAttackTest, BearerTokensAuthenticateAnExternalServiceWithItsRoleOnly) {
  const std::string before = Fingerprint();
  // A wrong token is UNAUTHENTICATED.
  ClientOptions o;
  o.address = address_;
  o.retry_for = absl::Seconds(5);
  o.transport = pki_.TokenClient("not-the-token");
  auto wrong = CoordinatorClient::Connect(o);
  ASSERT_TRUE(wrong.ok()) << wrong.status();
  EXPECT_EQ((*wrong)->Status().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Fingerprint(), before);
  // The right token is annotator:human-service: it registers raters as
  // annotators and labels, and is refused a learner's calls.
  o.transport = pki_.TokenClient(token_);
  auto human = CoordinatorClient::Connect(o);
  ASSERT_TRUE(human.ok()) << human.status();
  bpo::v1::WorkerInfo rater;
  rater.set_kind(bpo::v1::WORKER_KIND_ANNOTATOR);
  rater.set_annotator_kind(bpo::v1::ANNOTATOR_KIND_HUMAN);
  rater.set_name("human:alice");
  auto registered = (*human)->Register(rater);
  ASSERT_TRUE(registered.ok()) << registered.status();
  auto status = store_->Status();
  ASSERT_TRUE(status.ok());
  bool found = false;
  for (const auto& w : status->workers()) {
    if (w.info().name() == "human:alice") {
      found = true;
      EXPECT_EQ(w.info().identity(), "annotator:human-service");
    }
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE((*human)->LeasePairs(1, absl::Seconds(30)).ok());
  rater.set_kind(bpo::v1::WORKER_KIND_LEARNER);
  rater.set_name("human-learner");
  rater.set_world_size(1);
  EXPECT_EQ((*human)->Register(rater).status().code(), absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace bpo::coordinator
