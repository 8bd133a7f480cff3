#include "coordinator/testing/in_process_coordinator.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/status_macros.h"

namespace bpo::coordinator::testing {

bpo::v1::RunConfig SmallRunConfig() {
  bpo::v1::RunConfig config = DefaultRunConfig().config;
  config.set_run_id("human-test");
  auto* s = config.mutable_schedule();
  s->set_total_steps(4);
  s->set_phases(2);
  s->set_batch_size(2);
  s->set_pairs_per_phase(4);
  config.mutable_annotation()->set_raters_per_pair(1);
  config.mutable_annotation()->set_lease_seconds(600);
  return config;
}

absl::StatusOr<std::unique_ptr<InProcessCoordinator>> InProcessCoordinator::Start(
    const std::string& dir, bpo::v1::RunConfig config, TransportSecurity transport) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", dir, ": ", ec.message()));
  std::vector<bpo::v1::Prompt> prompts;
  for (int i = 0; i < 20; ++i) {
    bpo::v1::Prompt& p = prompts.emplace_back();
    p.set_prompt_id(absl::StrCat("q", i));
    p.set_text(absl::StrCat("prompt number ", i));
  }
  coordinator::RunStoreOptions options;
  options.path = (std::filesystem::path(dir) / "store.db").string();
  options.fsync = false;
  std::unique_ptr<InProcessCoordinator> c(new InProcessCoordinator());
  BPO_ASSIGN_OR_RETURN(c->store_, coordinator::RunStore::Open(config, prompts, options));
  BPO_ASSIGN_OR_RETURN(c->rpc_metrics_, coordinator::RpcMetrics::Create(&c->registry_));
  c->services_ = std::make_unique<coordinator::CoordinatorServices>(
      c->store_.get(), c->rpc_metrics_.get(), transport);
  BPO_ASSIGN_OR_RETURN(c->server_, StartGrpcServer("127.0.0.1:0", c->services_->list(), transport));

  bpo::v1::RegisterRequest learner;
  learner.mutable_worker()->set_kind(bpo::v1::WORKER_KIND_LEARNER);
  learner.mutable_worker()->set_name("learner-0");
  learner.mutable_worker()->set_world_size(config.learner().world_size());
  BPO_ASSIGN_OR_RETURN(bpo::v1::RegisterResponse l, c->store_->Register(learner));
  c->learner_ = l.worker_id();
  bpo::v1::RegisterRequest actor;
  actor.mutable_worker()->set_kind(bpo::v1::WORKER_KIND_ACTOR);
  actor.mutable_worker()->set_name("actor-0");
  BPO_ASSIGN_OR_RETURN(bpo::v1::RegisterResponse a, c->store_->Register(actor));
  c->actor_ = a.worker_id();
  return c;
}

InProcessCoordinator::~InProcessCoordinator() {
  if (server_.server != nullptr) server_.server->Shutdown();
}

absl::Status InProcessCoordinator::SamplePhase(uint64_t version) {
  bpo::v1::ReportSnapshotRequest report;
  report.set_worker_id(learner_);
  report.mutable_snapshot()->set_version(version);
  report.mutable_snapshot()->set_sha256(std::string(64, static_cast<char>('a' + version % 6)));
  report.mutable_snapshot()->set_size_bytes(100);
  report.set_serve_address("127.0.0.1:1");
  BPO_RETURN_IF_ERROR(store_->ReportSnapshot(report).status());
  return SampleOpenPrompts();
}

absl::Status InProcessCoordinator::SampleOpenPrompts() {
  while (true) {
    bpo::v1::LeasePromptsRequest ask;
    ask.set_worker_id(actor_);
    ask.set_max_prompts(8);
    BPO_ASSIGN_OR_RETURN(bpo::v1::LeasePromptsResponse lease, store_->LeasePrompts(ask));
    if (lease.work().empty()) return absl::OkStatus();
    bpo::v1::SubmitPairsRequest submit;
    submit.set_worker_id(actor_);
    submit.set_lease_id(lease.lease().lease_id());
    for (const auto& work : lease.work()) {
      bpo::v1::SampledPair* p = submit.add_pairs();
      p->set_run_id(store_->run_id());
      p->set_pair_id(work.pair_id());
      p->set_behavior_version(lease.snapshot_version());
      *p->mutable_prompt() = work.prompt();
      p->add_prompt_token_ids(2);
      p->mutable_a()->add_token_ids(5);
      p->mutable_a()->set_text(TextA(work.pair_id()));
      p->mutable_b()->add_token_ids(6);
      p->mutable_b()->add_token_ids(7);
      p->mutable_b()->set_text(TextB(work.pair_id()));
    }
    BPO_ASSIGN_OR_RETURN(bpo::v1::SubmitPairsResponse out, store_->SubmitPairs(submit));
    for (const auto& item : out.results()) {
      if (item.outcome() != bpo::v1::ItemStatus::ACCEPTED) {
        return absl::InternalError(absl::StrCat("pair ", item.id(), " refused: ", item.message()));
      }
    }
  }
}

absl::StatusOr<int> InProcessCoordinator::AnnotateAll() {
  if (annotator_.empty()) {  // registered on first use: tests of real annotators see none
    bpo::v1::RegisterRequest annotator;
    annotator.mutable_worker()->set_kind(bpo::v1::WORKER_KIND_ANNOTATOR);
    annotator.mutable_worker()->set_name("annotator-in-process");
    annotator.mutable_worker()->set_annotator_kind(bpo::v1::ANNOTATOR_KIND_RULE);
    BPO_ASSIGN_OR_RETURN(bpo::v1::RegisterResponse n, store_->Register(annotator));
    annotator_ = n.worker_id();
  }
  int labelled = 0;
  while (true) {
    bpo::v1::LeasePairsRequest ask;
    ask.set_worker_id(annotator_);
    ask.set_max_pairs(16);
    BPO_ASSIGN_OR_RETURN(bpo::v1::LeasePairsResponse lease, store_->LeasePairs(ask));
    if (lease.pairs().empty()) return labelled;
    bpo::v1::SubmitLabelsRequest submit;
    submit.set_worker_id(annotator_);
    submit.set_lease_id(lease.lease().lease_id());
    for (const auto& pair : lease.pairs()) {
      bpo::v1::Label* label = submit.add_labels();
      label->set_pair_id(pair.pair_id());
      label->set_choice(bpo::v1::CHOICE_A);
      label->set_provenance("rule:in-process");
    }
    BPO_ASSIGN_OR_RETURN(bpo::v1::SubmitLabelsResponse out, store_->SubmitLabels(submit));
    for (const auto& item : out.results()) {
      if (item.outcome() != bpo::v1::ItemStatus::ACCEPTED) {
        return absl::InternalError(absl::StrCat("label ", item.id(), " refused: ", item.message()));
      }
      ++labelled;
    }
  }
}

absl::StatusOr<bpo::v1::FetchBatchResponse> InProcessCoordinator::FetchAndCommit(int64_t step) {
  bpo::v1::FetchBatchRequest fetch;
  fetch.set_worker_id(learner_);
  fetch.set_step(step);
  fetch.set_rank(0);
  fetch.set_world_size(1);
  BPO_ASSIGN_OR_RETURN(bpo::v1::FetchBatchResponse batch, store_->FetchBatch(fetch));
  if (batch.pairs().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("step ", step, ": no batch yet"));
  }
  bpo::v1::CommitStepRequest commit;
  commit.set_worker_id(learner_);
  commit.set_step(step);
  BPO_RETURN_IF_ERROR(store_->CommitStep(commit).status());
  return batch;
}

}  // namespace bpo::coordinator::testing
