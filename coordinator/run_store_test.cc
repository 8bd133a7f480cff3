#include "coordinator/run_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/config.h"

namespace bpo::coordinator {
namespace {

namespace fs = std::filesystem;
using bpo::v1::ItemStatus;
using ::testing::HasSubstr;

class RunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_ = DefaultRunConfig().config;
    config_.set_run_id("unit");
    auto* s = config_.mutable_schedule();
    s->set_total_steps(4);
    s->set_phases(2);
    s->set_batch_size(2);
    s->set_pairs_per_phase(4);  // K*B
    config_.mutable_annotation()->set_lease_seconds(60);
    config_.mutable_coordinator()->set_actor_lease_seconds(30);
    for (int i = 0; i < 20; ++i) {
      bpo::v1::Prompt p;
      p.set_prompt_id(absl::StrCat("q", i));
      p.set_text(absl::StrCat("prompt number ", i));
      prompts_.push_back(p);
    }
  }

  std::unique_ptr<RunStore> Open() {
    RunStoreOptions o;
    o.path = (dir_ / "store.db").string();
    o.fsync = false;
    o.clock = [this] { return now_; };
    auto store = RunStore::Open(config_, prompts_, o);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string Register(RunStore* s, bpo::v1::WorkerKind kind, const std::string& name,
                       bpo::v1::AnnotatorKind ak = bpo::v1::ANNOTATOR_KIND_UNSPECIFIED) {
    bpo::v1::RegisterRequest r;
    r.mutable_worker()->set_kind(kind);
    r.mutable_worker()->set_name(name);
    r.mutable_worker()->set_annotator_kind(ak);
    r.mutable_worker()->set_world_size(config_.learner().world_size());
    auto out = s->Register(r);
    EXPECT_TRUE(out.ok()) << out.status();
    return out->worker_id();
  }

  void Publish(RunStore* s, const std::string& learner, uint64_t version) {
    bpo::v1::ReportSnapshotRequest r;
    r.set_worker_id(learner);
    r.mutable_snapshot()->set_version(version);
    r.mutable_snapshot()->set_sha256(std::string(64, 'a' + static_cast<char>(version)));
    r.mutable_snapshot()->set_size_bytes(100);
    r.set_serve_address("127.0.0.1:1");
    auto out = s->ReportSnapshot(r);
    ASSERT_TRUE(out.ok()) << out.status();
  }

  bpo::v1::LeasePromptsResponse Lease(RunStore* s, const std::string& actor, int n) {
    bpo::v1::LeasePromptsRequest r;
    r.set_worker_id(actor);
    r.set_max_prompts(n);
    auto out = s->LeasePrompts(r);
    EXPECT_TRUE(out.ok()) << out.status();
    return *out;
  }

  // Distinct responses unless `identical`.
  bpo::v1::SubmitPairsRequest Sampled(const std::string& actor,
                                      const bpo::v1::LeasePromptsResponse& lease) {
    bpo::v1::SubmitPairsRequest r;
    r.set_worker_id(actor);
    r.set_lease_id(lease.lease().lease_id());
    for (const auto& w : lease.work()) {
      auto* p = r.add_pairs();
      p->set_run_id("unit");
      p->set_pair_id(w.pair_id());
      p->set_behavior_version(lease.snapshot_version());
      p->add_prompt_token_ids(2);
      p->mutable_a()->add_token_ids(5);
      p->mutable_b()->add_token_ids(6);
      p->mutable_b()->add_token_ids(7);
    }
    return r;
  }

  bpo::v1::LeasePairsResponse LeaseLabels(RunStore* s, const std::string& annotator, int n) {
    bpo::v1::LeasePairsRequest r;
    r.set_worker_id(annotator);
    r.set_max_pairs(n);
    auto out = s->LeasePairs(r);
    EXPECT_TRUE(out.ok()) << out.status();
    return *out;
  }

  bpo::v1::SubmitLabelsRequest Labels(const std::string& annotator,
                                      const bpo::v1::LeasePairsResponse& lease,
                                      bpo::v1::Choice choice = bpo::v1::CHOICE_A) {
    bpo::v1::SubmitLabelsRequest r;
    r.set_worker_id(annotator);
    r.set_lease_id(lease.lease().lease_id());
    for (const auto& p : lease.pairs()) {
      auto* l = r.add_labels();
      l->set_pair_id(p.pair_id());
      l->set_choice(choice);
      l->set_provenance("rule:shorter");
    }
    return r;
  }

  static int Count(const google::protobuf::RepeatedPtrField<ItemStatus>& items,
                   ItemStatus::Outcome outcome) {
    int n = 0;
    for (const auto& i : items) n += i.outcome() == outcome;
    return n;
  }

  // Samples and labels everything queued.
  void SampleAndLabelAll(RunStore* s, const std::string& actor, const std::string& annotator) {
    while (true) {
      auto lease = Lease(s, actor, 3);
      if (lease.work().empty()) break;
      auto sub = s->SubmitPairs(Sampled(actor, lease));
      ASSERT_TRUE(sub.ok()) << sub.status();
    }
    while (true) {
      auto lease = LeaseLabels(s, annotator, 3);
      if (lease.pairs().empty()) break;
      ASSERT_TRUE(s->SubmitLabels(Labels(annotator, lease)).ok());
    }
  }

  bpo::v1::FetchBatchResponse Fetch(RunStore* s, const std::string& learner, int64_t step) {
    bpo::v1::FetchBatchRequest r;
    r.set_worker_id(learner);
    r.set_step(step);
    r.set_rank(0);
    r.set_world_size(1);
    auto out = s->FetchBatch(r);
    EXPECT_TRUE(out.ok()) << out.status();
    return *out;
  }

  absl::Status Commit(RunStore* s, const std::string& learner, int64_t step) {
    bpo::v1::CommitStepRequest r;
    r.set_worker_id(learner);
    r.set_step(step);
    (*r.mutable_metrics())["loss"] = 0.5;
    return s->CommitStep(r).status();
  }

  fs::path dir_;
  bpo::v1::RunConfig config_;
  std::vector<bpo::v1::Prompt> prompts_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

TEST_F(RunStoreTest, StrictRunConsumesEveryPairOnceInPhaseOrder) {
  auto s = Open();
  const auto learner = Register(s.get(), bpo::v1::WORKER_KIND_LEARNER, "learner-0");
  const auto actor = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-a");
  const auto annotator =
      Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "rule", bpo::v1::ANNOTATOR_KIND_RULE);

  // Nothing to sample before snapshot 0; the learner is asked to publish it.
  EXPECT_TRUE(Lease(s.get(), actor, 4).work().empty());
  auto first = Fetch(s.get(), learner, 0);
  EXPECT_TRUE(first.publish_snapshot());
  EXPECT_EQ(first.publish_version(), 0u);
  std::set<std::string> seen_prompts;
  for (int64_t t = 0; t < 4; ++t) {
    if (t % 2 == 0) {
      auto ask = Fetch(s.get(), learner, t);
      ASSERT_TRUE(ask.publish_snapshot()) << t;
      Publish(s.get(), learner, static_cast<uint64_t>(t / 2));
      // Strict: the batch waits until the whole phase is annotated.
      auto lease = Lease(s.get(), actor, 3);
      ASSERT_EQ(lease.work_size(), 3);
      EXPECT_EQ(lease.snapshot_version(), static_cast<uint64_t>(t / 2));
      ASSERT_TRUE(s->SubmitPairs(Sampled(actor, lease)).ok());
      auto wait = Fetch(s.get(), learner, t);
      EXPECT_TRUE(wait.pairs().empty());
      EXPECT_GT(wait.retry_after().nanos(), 0);
      SampleAndLabelAll(s.get(), actor, annotator);
    }
    auto batch = Fetch(s.get(), learner, t);
    ASSERT_EQ(batch.pairs_size(), 2) << t;
    for (const auto& p : batch.pairs()) {
      EXPECT_EQ(p.pair().behavior_version(), static_cast<uint64_t>(t / 2));
      EXPECT_EQ(p.label().choice(), bpo::v1::CHOICE_A);
      EXPECT_TRUE(seen_prompts.insert(p.pair().prompt().prompt_id()).second)
          << "prompts are drawn without replacement";
    }
    // A refetch (learner restart) returns the same batch.
    EXPECT_EQ(Fetch(s.get(), learner, t).pairs(0).pair().pair_id(),
              batch.pairs(0).pair().pair_id());
    ASSERT_TRUE(Commit(s.get(), learner, t).ok());
    EXPECT_TRUE(Commit(s.get(), learner, t).ok()) << "commit is idempotent";
  }
  auto status = s->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state(), bpo::v1::RUN_STATE_DONE);
  EXPECT_EQ(status->pairs_consumed(), 8);
  EXPECT_EQ(status->pairs_total(), 8);
  EXPECT_EQ(status->workers_size(), 3);
  auto counters = s->Counters();
  EXPECT_EQ(counters->workers_active["actor"], 1);
  EXPECT_EQ(counters->workers_active["learner"], 1);
  now_ += absl::Seconds(config_.coordinator().worker_timeout_seconds() + 1);
  EXPECT_EQ(s->Counters()->workers_active["actor"], 0) << "silent workers are not counted";
  EXPECT_EQ(status->last_step_metrics().at("loss"), 0.5);
  EXPECT_TRUE(Fetch(s.get(), learner, 4).done());
}

TEST_F(RunStoreTest, ExpiredLeaseGoesToAnotherActorAndTheLateSubmissionIsRefused) {
  auto s = Open();
  const auto learner = Register(s.get(), bpo::v1::WORKER_KIND_LEARNER, "learner-0");
  const auto a = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-a");
  const auto b = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-b");
  Publish(s.get(), learner, 0);
  auto lease_a = Lease(s.get(), a, 4);
  ASSERT_EQ(lease_a.work_size(), 4);
  EXPECT_TRUE(Lease(s.get(), b, 4).work().empty());
  // A heartbeat keeps it...
  now_ += absl::Seconds(20);
  bpo::v1::HeartbeatRequest hb;
  hb.set_worker_id(a);
  hb.add_lease_ids(lease_a.lease().lease_id());
  auto beat = s->Heartbeat(hb);
  ASSERT_TRUE(beat.ok());
  ASSERT_EQ(beat->leases_size(), 1);
  now_ += absl::Seconds(20);
  EXPECT_TRUE(Lease(s.get(), b, 4).work().empty());
  // ...silence loses it.
  now_ += absl::Seconds(31);
  auto lease_b = Lease(s.get(), b, 4);
  ASSERT_EQ(lease_b.work_size(), 4);
  auto late = s->SubmitPairs(Sampled(a, lease_a));
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(Count(late->results(), ItemStatus::REJECTED), 4);
  EXPECT_THAT(late->results(0).message(), HasSubstr("not leased to worker"));
  auto ok = s->SubmitPairs(Sampled(b, lease_b));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(Count(ok->results(), ItemStatus::ACCEPTED), 4);
  // A retried submission is recognised and changes nothing.
  auto again = s->SubmitPairs(Sampled(b, lease_b));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Count(again->results(), ItemStatus::DUPLICATE), 4);
  auto counters = s->Counters();
  EXPECT_EQ(counters->pairs[PairState::kSampled], 4);
  EXPECT_EQ(counters->leases_expired, 1);
}

TEST_F(RunStoreTest, ReopenedStoreContinuesTheRunWithNothingLost) {
  std::string learner, actor, annotator;
  {
    auto s = Open();
    learner = Register(s.get(), bpo::v1::WORKER_KIND_LEARNER, "learner-0");
    actor = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-a");
    annotator =
        Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "rule", bpo::v1::ANNOTATOR_KIND_RULE);
    Publish(s.get(), learner, 0);
    SampleAndLabelAll(s.get(), actor, annotator);
    ASSERT_EQ(Fetch(s.get(), learner, 0).pairs_size(), 2);
    ASSERT_TRUE(Commit(s.get(), learner, 0).ok());
    ASSERT_EQ(Fetch(s.get(), learner, 1).pairs_size(), 2);  // formed, not committed
  }
  auto s = Open();
  // Workers keep their identity by name.
  EXPECT_EQ(Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-a"), actor);
  auto c = s->Counters();
  EXPECT_EQ(c->pairs[PairState::kConsumed], 2);
  EXPECT_EQ(c->pairs[PairState::kBatched], 2);
  EXPECT_EQ(c->steps_committed, 1);
  ASSERT_TRUE(Commit(s.get(), learner, 1).ok());
  Fetch(s.get(), learner, 2);
  Publish(s.get(), learner, 1);
  SampleAndLabelAll(s.get(), actor, annotator);
  for (int t = 2; t < 4; ++t) {
    ASSERT_EQ(Fetch(s.get(), learner, t).pairs_size(), 2);
    ASSERT_TRUE(Commit(s.get(), learner, t).ok());
  }
  EXPECT_EQ(s->Counters()->pairs[PairState::kConsumed], 8);
}

TEST_F(RunStoreTest, ReopeningWithAnotherConfigIsRefused) {
  { auto s = Open(); }
  config_.mutable_loss()->set_beta(0.5);
  RunStoreOptions o;
  o.path = (dir_ / "store.db").string();
  auto s = RunStore::Open(config_, prompts_, o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("beta"));
  config_.set_run_id("other");
  s = RunStore::Open(config_, prompts_, o);
  EXPECT_THAT(s.status().message(), HasSubstr("holds run 'unit'"));
}

TEST_F(RunStoreTest, BadRequestsGetPreciseErrorsAndChangeNothing) {
  auto s = Open();
  const auto learner = Register(s.get(), bpo::v1::WORKER_KIND_LEARNER, "learner-0");
  const auto actor = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-a");
  const auto annotator =
      Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "rule", bpo::v1::ANNOTATOR_KIND_RULE);
  Publish(s.get(), learner, 0);

  bpo::v1::LeasePromptsRequest unknown;
  unknown.set_worker_id("nobody");
  EXPECT_EQ(s->LeasePrompts(unknown).status().code(), absl::StatusCode::kNotFound);
  bpo::v1::LeasePromptsRequest wrong_kind;
  wrong_kind.set_worker_id(annotator);
  EXPECT_EQ(s->LeasePrompts(wrong_kind).status().code(), absl::StatusCode::kPermissionDenied);

  auto lease = Lease(s.get(), actor, 2);
  auto bad = Sampled(actor, lease);
  bad.mutable_pairs(0)->set_run_id("another-run");
  bad.mutable_pairs(1)->set_behavior_version(7);
  auto* unknown_pair = bad.add_pairs();
  *unknown_pair = bad.pairs(1);
  unknown_pair->set_pair_id("p9-999");
  auto out = s->SubmitPairs(bad);
  ASSERT_TRUE(out.ok());
  EXPECT_THAT(out->results(0).message(), HasSubstr("not this run"));
  EXPECT_THAT(out->results(1).message(), HasSubstr("behavior_version 7"));
  EXPECT_EQ(out->results(2).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(s->Counters()->pairs[PairState::kSampled], 0);

  // Labels: a pair not leased to this annotator, a bad provenance, no choice.
  ASSERT_TRUE(s->SubmitPairs(Sampled(actor, lease)).ok());
  const auto other =
      Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "rm", bpo::v1::ANNOTATOR_KIND_RM);
  auto labels = LeaseLabels(s.get(), annotator, 2);
  ASSERT_EQ(labels.pairs_size(), 2);
  auto stolen = s->SubmitLabels(Labels(other, labels));
  ASSERT_TRUE(stolen.ok());
  EXPECT_THAT(stolen->results(0).message(), HasSubstr("provenance 'rule:shorter' must be 'rm:"));
  auto stolen2 = Labels(other, labels);
  stolen2.mutable_labels(0)->set_provenance("rm:abc");
  stolen2.mutable_labels(1)->set_provenance("rm:abc");
  stolen2.mutable_labels(1)->set_choice(bpo::v1::CHOICE_UNSPECIFIED);
  auto out2 = s->SubmitLabels(stolen2);
  EXPECT_THAT(out2->results(0).message(), HasSubstr("not leased to worker"));
  EXPECT_THAT(out2->results(1).message(), HasSubstr("choice must be"));
  EXPECT_EQ(s->Counters()->pairs[PairState::kAnnotated], 0);

  // Snapshots: a stale or unknown version, a changed payload.
  bpo::v1::ReportSnapshotRequest snap;
  snap.set_worker_id(learner);
  snap.mutable_snapshot()->set_version(5);
  snap.mutable_snapshot()->set_sha256(std::string(64, 'f'));
  snap.mutable_snapshot()->set_size_bytes(1);
  snap.set_serve_address("x:1");
  EXPECT_EQ(s->ReportSnapshot(snap).status().code(), absl::StatusCode::kFailedPrecondition);
  snap.mutable_snapshot()->set_version(0);
  EXPECT_EQ(s->ReportSnapshot(snap).status().code(), absl::StatusCode::kAlreadyExists);
  // The learner: out-of-order steps, a wrong world size.
  bpo::v1::FetchBatchRequest fb;
  fb.set_worker_id(learner);
  fb.set_step(3);
  fb.set_world_size(1);
  EXPECT_EQ(s->FetchBatch(fb).status().code(), absl::StatusCode::kFailedPrecondition);
  fb.set_step(0);
  fb.set_world_size(2);
  EXPECT_EQ(s->FetchBatch(fb).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Commit(s.get(), learner, 0).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RunStoreTest, IdenticalPairsAndTiesAreDroppedAndReplacedByNewPrompts) {
  auto s = Open();
  const auto learner = Register(s.get(), bpo::v1::WORKER_KIND_LEARNER, "learner-0");
  const auto actor = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-a");
  const auto annotator =
      Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "rule", bpo::v1::ANNOTATOR_KIND_RULE);
  Publish(s.get(), learner, 0);
  auto lease = Lease(s.get(), actor, 4);
  ASSERT_EQ(lease.work_size(), 4);
  auto sub = Sampled(actor, lease);
  sub.mutable_pairs()->DeleteSubrange(0, 1);
  sub.add_dropped_pair_ids(lease.work(0).pair_id());
  auto out = s->SubmitPairs(sub);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(Count(out->results(), ItemStatus::ACCEPTED), 4);
  auto c = s->Counters();
  EXPECT_EQ(c->pairs[PairState::kDropped], 1);
  // Strict: not replaced yet. Replacements are made in one round once no
  // pair of the phase is waiting, so that their numbering (and the prompts
  // they get) never depends on the order in which drops arrived.
  EXPECT_EQ(c->pairs[PairState::kQueued], 0);
  // A tie (annotation.ties: skip) is dropped too.
  auto labels = LeaseLabels(s.get(), annotator, 1);
  ASSERT_TRUE(s->SubmitLabels(Labels(annotator, labels, bpo::v1::CHOICE_TIE)).ok());
  c = s->Counters();
  EXPECT_EQ(c->pairs[PairState::kDropped], 2);
  EXPECT_EQ(c->pairs[PairState::kQueued], 0);
  SampleAndLabelAll(s.get(), actor, annotator);
  EXPECT_EQ(s->Counters()->pairs[PairState::kAnnotated], 2);
  // Nothing of phase 0 is waiting: the learner's poll makes both
  // replacements, one group, with new prompts.
  EXPECT_EQ(Fetch(s.get(), learner, 0).pairs_size(), 0);
  EXPECT_EQ(s->Counters()->pairs[PairState::kQueued], 2);
  auto next = Lease(s.get(), actor, 4);
  ASSERT_EQ(next.work_size(), 2);
  for (const auto& w : next.work()) {
    for (const auto& old : lease.work())
      EXPECT_NE(w.prompt().prompt_id(), old.prompt().prompt_id());
  }
  ASSERT_TRUE(s->SubmitPairs(Sampled(actor, next)).ok());
  SampleAndLabelAll(s.get(), actor, annotator);
  EXPECT_EQ(s->Counters()->pairs[PairState::kAnnotated], 4);
  EXPECT_EQ(Fetch(s.get(), learner, 0).pairs_size(), 2);
}

TEST_F(RunStoreTest, LeasesHandOutFixedGroupsWhoeverAsks) {
  config_.mutable_sampling()->set_prompts_per_lease(2);  // M = 4: groups {0, 1} and {2, 3}
  auto s = Open();
  const auto learner = Register(s.get(), bpo::v1::WORKER_KIND_LEARNER, "learner-0");
  const auto a = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-a");
  const auto b = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-b");
  const auto rater =
      Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "rule", bpo::v1::ANNOTATOR_KIND_RULE);
  Publish(s.get(), learner, 0);
  auto ids = [](const auto& items) {
    std::vector<std::string> out;
    for (const auto& w : items) out.push_back(w.pair_id());
    return out;
  };
  // Asking for more than a group gets one group; never two groups mixed.
  auto first = Lease(s.get(), a, 4);
  EXPECT_THAT(ids(first.work()), ::testing::ElementsAre("p0-0", "p0-1"));
  auto second = Lease(s.get(), b, 4);
  EXPECT_THAT(ids(second.work()), ::testing::ElementsAre("p0-2", "p0-3"));
  // An expired group comes back whole, to whoever asks next.
  now_ += absl::Seconds(31);
  ASSERT_TRUE(s->ExpireLeases().ok());
  auto again = Lease(s.get(), b, 4);
  EXPECT_THAT(ids(again.work()), ::testing::ElementsAre("p0-0", "p0-1"));
  ASSERT_TRUE(s->SubmitPairs(Sampled(b, again)).ok());
  auto rest = Lease(s.get(), a, 4);
  EXPECT_THAT(ids(rest.work()), ::testing::ElementsAre("p0-2", "p0-3"));
  ASSERT_TRUE(s->SubmitPairs(Sampled(a, rest)).ok());
  // A label lease holds one group's pairs too, whatever the rater asks.
  auto labels = LeaseLabels(s.get(), rater, 8);
  EXPECT_THAT(ids(labels.pairs()), ::testing::ElementsAre("p0-0", "p0-1"));
}

TEST_F(RunStoreTest, TwoRatersPerPairReportTheirAgreement) {
  config_.mutable_annotation()->set_raters_per_pair(2);
  auto s = Open();
  const auto learner = Register(s.get(), bpo::v1::WORKER_KIND_LEARNER, "learner-0");
  const auto actor = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-a");
  const auto ann =
      Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "alice", bpo::v1::ANNOTATOR_KIND_RULE);
  const auto bob =
      Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "bob", bpo::v1::ANNOTATOR_KIND_RULE);
  Publish(s.get(), learner, 0);
  auto lease = Lease(s.get(), actor, 4);
  ASSERT_TRUE(s->SubmitPairs(Sampled(actor, lease)).ok());
  auto la = LeaseLabels(s.get(), ann, 4);
  auto lb = LeaseLabels(s.get(), bob, 4);
  ASSERT_EQ(la.pairs_size(), 4);
  ASSERT_EQ(lb.pairs_size(), 4);
  EXPECT_TRUE(LeaseLabels(s.get(), ann, 4).pairs().empty())
      << "never the same pair twice to one rater";
  ASSERT_TRUE(s->SubmitLabels(Labels(ann, la)).ok());
  EXPECT_EQ(s->Counters()->pairs[PairState::kAnnotated], 0) << "one of two labels is not enough";
  auto bl = Labels(bob, lb);
  bl.mutable_labels(0)->set_choice(bpo::v1::CHOICE_B);  // disagree: a tie, dropped
  ASSERT_TRUE(s->SubmitLabels(bl).ok());
  auto status = s->Status();
  EXPECT_EQ(status->rater_pairs_compared(), 4);
  EXPECT_DOUBLE_EQ(status->rater_agreement(), 0.75);
  EXPECT_EQ(status->pairs_annotated(), 3);
  EXPECT_EQ(status->pairs_dropped(), 1);
}

TEST_F(RunStoreTest, AsyncModeSamplesTheNextPhaseFromTheCurrentSnapshot) {
  config_.mutable_schedule()->set_mode(bpo::v1::ScheduleConfig::ASYNC);
  config_.mutable_schedule()->set_max_staleness(1);
  auto s = Open();
  const auto learner = Register(s.get(), bpo::v1::WORKER_KIND_LEARNER, "learner-0");
  const auto actor = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor-a");
  const auto annotator =
      Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "rule", bpo::v1::ANNOTATOR_KIND_RULE);
  Publish(s.get(), learner, 0);
  // Phases 0 and 1 are both open on snapshot 0 (one lease group each).
  auto lease = Lease(s.get(), actor, 100);
  EXPECT_EQ(lease.work_size(), 4);
  ASSERT_TRUE(s->SubmitPairs(Sampled(actor, lease)).ok());
  auto next = Lease(s.get(), actor, 100);
  EXPECT_EQ(next.work_size(), 4);
  EXPECT_EQ(next.snapshot_version(), 0u);
  EXPECT_EQ(next.work(0).pair_id(), "p1-4");
  ASSERT_TRUE(s->SubmitPairs(Sampled(actor, next)).ok());
  auto labels = LeaseLabels(s.get(), annotator, 2);  // only 2 of phase 0 annotated
  ASSERT_TRUE(s->SubmitLabels(Labels(annotator, labels)).ok());
  EXPECT_EQ(Fetch(s.get(), learner, 0).pairs_size(), 2) << "async: no wait for the whole phase";
  ASSERT_TRUE(Commit(s.get(), learner, 0).ok());
  SampleAndLabelAll(s.get(), actor, annotator);
  ASSERT_EQ(Fetch(s.get(), learner, 1).pairs_size(), 2);
  ASSERT_TRUE(Commit(s.get(), learner, 1).ok());
  ASSERT_TRUE(Fetch(s.get(), learner, 2).publish_snapshot());
  Publish(s.get(), learner, 1);
  auto batch = Fetch(s.get(), learner, 2);
  ASSERT_EQ(batch.pairs_size(), 2);
  EXPECT_EQ(batch.pairs(0).pair().behavior_version(), 0u);
  EXPECT_EQ(batch.staleness(), 1);
  EXPECT_EQ(s->Status()->max_staleness_seen(), 1);
}

TEST_F(RunStoreTest, NamesBelongToTheirIdentityAndEachIdentityRegistersBoundedNames) {
  config_.mutable_coordinator()->set_workers_per_identity_max(2);
  auto s = Open();
  auto reg = [&](const std::string& name, const std::string& identity) {
    bpo::v1::RegisterRequest r;
    r.mutable_worker()->set_kind(bpo::v1::WORKER_KIND_ANNOTATOR);
    r.mutable_worker()->set_annotator_kind(bpo::v1::ANNOTATOR_KIND_HUMAN);
    r.mutable_worker()->set_name(name);
    r.mutable_worker()->set_identity(identity);
    return s->Register(r);
  };
  ASSERT_TRUE(reg("human:alice", "annotator:svc").ok());
  ASSERT_TRUE(reg("human:bob", "annotator:svc").ok());
  ASSERT_TRUE(reg("human:alice", "annotator:svc").ok());  // again: same name, no new one
  auto third = reg("human:carol", "annotator:svc");
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("coordinator.workers_per_identity_max"));
  auto stolen = reg("human:alice", "annotator:other");
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(stolen.status().message(), HasSubstr("belongs to identity 'annotator:svc'"));
  EXPECT_TRUE(reg("human:dave", "annotator:other").ok());
}

TEST_F(RunStoreTest, APairTheLearnerCannotUseIsQuarantinedAndReplacedNeverBatched) {
  auto s = Open();
  const std::string learner = Register(s.get(), bpo::v1::WORKER_KIND_LEARNER, "learner");
  const std::string actor = Register(s.get(), bpo::v1::WORKER_KIND_ACTOR, "actor");
  const std::string rater =
      Register(s.get(), bpo::v1::WORKER_KIND_ANNOTATOR, "rater", bpo::v1::ANNOTATOR_KIND_RULE);
  Publish(s.get(), learner, 0);
  // The first pair of the phase carries a token the learner's model lacks
  // (accepted when it arrived, e.g. by a coordinator without the vocabulary).
  auto lease = Lease(s.get(), actor, 4);
  ASSERT_EQ(lease.work_size(), 4);
  auto sampled = Sampled(actor, lease);
  const std::string bad = sampled.pairs(0).pair_id();
  sampled.mutable_pairs(0)->mutable_a()->set_token_ids(0, 999);
  ASSERT_TRUE(s->SubmitPairs(sampled).ok());
  SampleAndLabelAll(s.get(), actor, rater);
  s->SetPairCheck([](const bpo::v1::SampledPair& p) {
    return p.a().token_ids(0) == 999 ? std::string("a.token_ids[0] = 999 is outside") : "";
  });
  // The batch waits for the replacement instead of holding the bad pair.
  auto batch = Fetch(s.get(), learner, 0);
  EXPECT_EQ(batch.pairs_size(), 0);
  auto pairs = s->PairIds(PairState::kDropped);
  ASSERT_TRUE(pairs.ok());
  EXPECT_THAT(*pairs, ::testing::ElementsAre(bad));
  SampleAndLabelAll(s.get(), actor, rater);  // the replacement prompt
  batch = Fetch(s.get(), learner, 0);
  ASSERT_EQ(batch.pairs_size(), 2);
  for (int64_t step = 0; step < 2; ++step) {
    batch = Fetch(s.get(), learner, step);
    ASSERT_EQ(batch.pairs_size(), 2) << step;
    for (const auto& p : batch.pairs()) EXPECT_NE(p.pair().pair_id(), bad);
    ASSERT_TRUE(Commit(s.get(), learner, step).ok());
  }
  auto status = s->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_GE(status->pairs_dropped(), 1);
}

}  // namespace
}  // namespace bpo::coordinator
