#include "coordinator/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/config.h"

namespace bpo::coordinator {
namespace {

using ::testing::HasSubstr;

ValidationLimits Limits() {
  ValidationLimits l;
  l.vocab_size = 100;
  l.prompt_tokens_max = 4;
  l.response_tokens_max = 3;
  l.snapshot_dir = "/runs/r/snapshots";
  return l;
}

bpo::v1::SampledPair GoodPair() {
  bpo::v1::SampledPair p;
  p.set_pair_id("p0");
  p.add_prompt_token_ids(0);
  p.mutable_a()->add_token_ids(99);
  p.mutable_b()->add_token_ids(1);
  return p;
}

TEST(ValidationTest, LimitsComeFromTheConfigWithBackwardsCompatibleDefaults) {
  bpo::v1::RunConfig c = DefaultRunConfig().config;
  c.set_run_id("r");
  c.set_output_dir("out");
  ValidationLimits l = LimitsFromConfig(c);
  EXPECT_EQ(l.string_bytes_max, 256);
  EXPECT_EQ(l.vocab_size, 0);
  EXPECT_EQ(l.prompt_tokens_max, 4096);
  EXPECT_EQ(l.response_tokens_max, c.sampling().max_new_tokens() + 1);
  EXPECT_EQ(l.snapshot_bytes_max, uint64_t{16} << 30);
  EXPECT_EQ(l.snapshot_dir, "out/r/snapshots");
  c.mutable_coordinator()->set_vocab_size(32000);
  c.mutable_coordinator()->set_string_bytes_max(64);
  c.mutable_learner()->set_snapshot_dir("/shared/snaps");
  l = LimitsFromConfig(c);
  EXPECT_EQ(l.vocab_size, 32000);
  EXPECT_EQ(l.string_bytes_max, 64);
  EXPECT_EQ(l.snapshot_dir, "/shared/snaps");
}

TEST(ValidationTest, UnknownEnumsAreRefused) {
  bpo::v1::RegisterRequest r;
  r.mutable_worker()->set_name("w");
  for (int kind : {-1, 0, 4}) {
    r.mutable_worker()->set_kind(static_cast<bpo::v1::WorkerKind>(kind));
    EXPECT_EQ(Validate(r, Limits()).code(), absl::StatusCode::kInvalidArgument) << kind;
  }
  r.mutable_worker()->set_kind(bpo::v1::WORKER_KIND_ANNOTATOR);
  r.mutable_worker()->set_annotator_kind(static_cast<bpo::v1::AnnotatorKind>(9));
  EXPECT_EQ(Validate(r, Limits()).code(), absl::StatusCode::kInvalidArgument);
  r.mutable_worker()->set_annotator_kind(bpo::v1::ANNOTATOR_KIND_RM);
  EXPECT_TRUE(Validate(r, Limits()).ok());

  bpo::v1::SubmitLabelsRequest labels;
  labels.add_labels()->set_choice(static_cast<bpo::v1::Choice>(5));
  EXPECT_THAT(Validate(labels, Limits()).message(), HasSubstr("labels[0].choice 5"));
  labels.mutable_labels(0)->set_choice(bpo::v1::CHOICE_SKIP);
  EXPECT_TRUE(Validate(labels, Limits()).ok());
  labels.mutable_labels(0)->set_score_a(std::nan(""));
  EXPECT_EQ(Validate(labels, Limits()).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidationTest, TokenIdsLieInTheVocabularyAndLengthsInTheirBounds) {
  EXPECT_EQ(CheckPairBounds(GoodPair(), Limits()), "");
  auto p = GoodPair();
  p.mutable_a()->set_token_ids(0, 100);
  EXPECT_THAT(CheckPairBounds(p, Limits()), HasSubstr("a.token_ids[0] = 100 is outside"));
  p = GoodPair();
  p.set_prompt_token_ids(0, -7);
  EXPECT_THAT(CheckPairBounds(p, Limits()), HasSubstr("prompt_token_ids[0] = -7"));
  p = GoodPair();
  p.mutable_b()->clear_token_ids();
  EXPECT_EQ(CheckPairBounds(p, Limits()), "b.token_ids is empty");
  p = GoodPair();
  p.clear_prompt_token_ids();
  EXPECT_EQ(CheckPairBounds(p, Limits()), "prompt_token_ids is empty");
  p = GoodPair();
  for (int i = 0; i < 4; ++i) p.add_prompt_token_ids(1);
  EXPECT_THAT(CheckPairBounds(p, Limits()), HasSubstr("prompt_token_ids has 5 tokens"));
  p = GoodPair();
  for (int i = 0; i < 3; ++i) p.mutable_b()->add_token_ids(1);
  EXPECT_THAT(CheckPairBounds(p, Limits()), HasSubstr("b.token_ids has 4 tokens; at most 3"));
  // vocab_size unknown: large ids pass, negative ones do not.
  ValidationLimits unknown = Limits();
  unknown.vocab_size = 0;
  p = GoodPair();
  p.mutable_a()->set_token_ids(0, 1 << 30);
  EXPECT_EQ(CheckPairBounds(p, unknown), "");
  p.mutable_a()->set_token_ids(0, -1);
  EXPECT_NE(CheckPairBounds(p, unknown), "");

  // The request as a whole: its ids and counts (pairs are checked one by one).
  bpo::v1::SubmitPairsRequest r;
  *r.add_pairs() = GoodPair();
  EXPECT_TRUE(Validate(r, Limits()).ok());
  r.mutable_pairs(0)->set_pair_id(std::string(300, 'p'));
  EXPECT_EQ(Validate(r, Limits()).code(), absl::StatusCode::kInvalidArgument);
  r.clear_pairs();
  for (int i = 0; i < 4097; ++i) r.add_dropped_pair_ids("p");
  EXPECT_EQ(Validate(r, Limits()).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidationTest, StringsListsAndCountsAreBounded) {
  bpo::v1::RegisterRequest reg;
  reg.mutable_worker()->set_kind(bpo::v1::WORKER_KIND_ACTOR);
  reg.mutable_worker()->set_name(std::string(256, 'x'));
  EXPECT_TRUE(Validate(reg, Limits()).ok());
  reg.mutable_worker()->set_name(std::string(257, 'x'));
  EXPECT_EQ(Validate(reg, Limits()).code(), absl::StatusCode::kInvalidArgument);

  bpo::v1::HeartbeatRequest hb;
  for (int i = 0; i < 1024; ++i) hb.add_lease_ids("l");
  EXPECT_TRUE(Validate(hb, Limits()).ok());
  hb.add_lease_ids("l");
  EXPECT_EQ(Validate(hb, Limits()).code(), absl::StatusCode::kInvalidArgument);

  bpo::v1::LeasePairsRequest lp;
  lp.set_max_pairs(-1);
  EXPECT_EQ(Validate(lp, Limits()).code(), absl::StatusCode::kInvalidArgument);
  lp.set_max_pairs(4096);
  EXPECT_TRUE(Validate(lp, Limits()).ok());

  bpo::v1::ReturnPromptsRequest back;
  for (int i = 0; i < 4097; ++i) back.add_pair_ids("p");
  EXPECT_EQ(Validate(back, Limits()).code(), absl::StatusCode::kInvalidArgument);

  bpo::v1::FetchBatchRequest fb;
  fb.set_step(-1);
  EXPECT_EQ(Validate(fb, Limits()).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidationTest, SnapshotPathsMustLieUnderTheSnapshotDirectory) {
  bpo::v1::ReportSnapshotRequest r;
  r.mutable_snapshot()->set_size_bytes(10);
  r.set_path("/runs/r/snapshots/snapshot-0.tar");
  EXPECT_TRUE(Validate(r, Limits()).ok());
  r.set_path("");  // only a serve_address
  EXPECT_TRUE(Validate(r, Limits()).ok());
  for (const char* bad :
       {"/dev/zero", "/runs/r/snapshots/../s.db", "/runs/r/snapshots", "/runs/r/snapshotsX/a",
        "/runs/r/snapshots/a/../../../etc/passwd", "snapshots/a"}) {
    r.set_path(bad);
    EXPECT_EQ(Validate(r, Limits()).code(), absl::StatusCode::kPermissionDenied) << bad;
  }
  ValidationLimits none = Limits();
  none.snapshot_dir.clear();
  r.set_path("/runs/r/snapshots/snapshot-0.tar");
  EXPECT_EQ(Validate(r, none).code(), absl::StatusCode::kPermissionDenied);

  r.set_path("/runs/r/snapshots/snapshot-0.tar");
  r.mutable_snapshot()->set_size_bytes((uint64_t{16} << 30) + 1);
  EXPECT_THAT(Validate(r, Limits()).message(), HasSubstr("coordinator.snapshot_bytes_max"));
}

TEST(ValidationTest, StepMetricsMustBeFiniteAndSane) {
  bpo::v1::CommitStepRequest r;
  (*r.mutable_metrics())["loss"] = 0.69;
  EXPECT_TRUE(Validate(r, Limits()).ok());
  for (double v : {-1e300, 1e13, std::nan(""), -std::numeric_limits<double>::infinity()}) {
    (*r.mutable_metrics())["loss"] = v;
    EXPECT_EQ(Validate(r, Limits()).code(), absl::StatusCode::kInvalidArgument) << v;
  }
}

}  // namespace
}  // namespace bpo::coordinator
