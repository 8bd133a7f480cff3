// Data parallelism on CPU (Gloo): 2 ranks, each stepping on its half of a
// global batch, end with the same parameters as 1 rank on the whole batch
// (max |Δ| <= 1e-6 after 3 steps). Real processes: the test re-executes
// itself as the ranks.
#include <ATen/ATen.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "collective/collective.h"
#include "collective/collective_test_util.h"
#include "gtest/gtest.h"
#include "learner/trainer.h"
#include "model/safetensors.h"

namespace bpo::learner {
namespace {

constexpr int64_t kPairs = 4, kSteps = 3;

std::string Fixture() { return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/llama"); }

// A global batch of kPairs random pairs for step t (identical on every rank).
PairBatch GlobalBatch(int64_t t) {
  at::manual_seed(100 + t);
  PairBatch b;
  b.input_ids = at::randint(3, 400, {2 * kPairs, 20}, at::kLong);
  b.attention_mask = at::ones_like(b.input_ids);
  b.response_mask = at::zeros_like(b.input_ids);
  b.response_mask.narrow(1, 8, 12).fill_(1);
  b.behavior_versions.assign(kPairs, 0);
  return b;
}

PairBatch Shard(const PairBatch& g, int rank, int world) {
  const int64_t per = kPairs / world;
  const at::Tensor idx = at::arange(rank * per, (rank + 1) * per);
  const at::Tensor rows = at::cat({idx, idx + kPairs});
  PairBatch b;
  b.input_ids = g.input_ids.index_select(0, rows);
  b.attention_mask = g.attention_mask.index_select(0, rows);
  b.response_mask = g.response_mask.index_select(0, rows);
  b.behavior_versions.assign(per, 0);
  return b;
}

// Trains kSteps and writes member parameters to `out`.
void Train(int rank, int world, const std::string& rendezvous, const std::string& out) {
  auto model = model::CausalLm::Load(Fixture());
  ASSERT_TRUE(model.ok()) << model.status();
  model::LoraOptions lo;
  lo.members = 2;
  lo.rank = 4;
  lo.alpha = 8;
  lo.dropout = 0;  // dropout masks would differ between layouts
  lo.seed = 7;
  auto lora = model::LoraEnsemble::Create(**model, lo);
  ASSERT_TRUE(lora.ok());
  std::unique_ptr<collective::Collective> collective;
  TrainerOptions o;
  // The authors' learning rate. (AdamW divides by sqrt(v) + 1e-6, so for
  // gradient elements near 1e-6 float rounding that differs between batch
  // layouts is amplified by lr/eps; at lr 1e-2 that alone reaches 1e-4.)
  o.learning_rate = 5e-5;
  o.total_steps = 10;
  if (world > 1) {
    collective::CollectiveOptions co;
    co.rank = rank;
    co.world_size = world;
    co.rendezvous = rendezvous;
    co.run_id = "dp-test";
    co.timeout = absl::Seconds(60);
    auto c = collective::CreateCollective(co, collective::Backend::kGloo);
    ASSERT_TRUE(c.ok()) << c.status();
    collective = std::move(*c);
    o.collective = collective.get();
  }
  EnsembleTrainer trainer(model->get(), lora->get(), o);
  trainer.SetBehaviorSnapshot(0, (*lora)->Merge(o.merge_mode));
  for (int64_t t = 0; t < kSteps; ++t) {
    auto m = trainer.Step(Shard(GlobalBatch(t), rank, world));
    ASSERT_TRUE(m.ok()) << m.status();
  }
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (int i = 0; i < 2; ++i) {
    const auto p = (*lora)->Parameters(i);
    for (size_t k = 0; k < p.size(); ++k)
      params.emplace_back(absl::StrCat(i, ".", k), p[k].detach());
  }
  ASSERT_TRUE(model::WriteSafetensors(out, params).ok());
}

// The rank entry point, run in the spawned processes only.
TEST(DataParallelWorker, Rank) {
  const char* rank = std::getenv("BPO_DP_RANK");
  if (rank == nullptr) GTEST_SKIP() << "worker entry point";
  int r = 0;
  ASSERT_TRUE(absl::SimpleAtoi(rank, &r));
  Train(r, 2, std::getenv("BPO_DP_RENDEZVOUS"), std::getenv("BPO_DP_OUT"));
}

TEST(DataParallelTest, TwoRanksEqualOneRankOnTheGlobalBatch) {
  const std::string dir = collective::testing::MakeTempDir();
  Train(0, 1, "", dir + "/one.safetensors");
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r) {
    pids.push_back(collective::testing::SpawnSelf(
        "DataParallelWorker.Rank",
        {{"BPO_DP_RANK", absl::StrCat(r)},
         {"BPO_DP_RENDEZVOUS", "file:" + dir},
         {"BPO_DP_OUT", absl::StrCat(dir, "/rank", r, ".safetensors")}}));
  }
  for (int status : collective::testing::WaitAll(pids, absl::Minutes(4))) {
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a rank failed";
  }
  auto one = model::SafetensorsFile::Open(dir + "/one.safetensors");
  ASSERT_TRUE(one.ok());
  for (int r = 0; r < 2; ++r) {
    auto two = model::SafetensorsFile::Open(absl::StrCat(dir, "/rank", r, ".safetensors"));
    ASSERT_TRUE(two.ok());
    double worst = 0;
    for (const auto& t : (*one)->header().tensors) {
      worst = std::max(
          worst, (*(*one)->Tensor(t.name) - *(*two)->Tensor(t.name)).abs().max().item<double>());
    }
    std::printf("rank %d of 2 vs 1 rank after %lld steps: max |delta| = %.3g\n", r,
                static_cast<long long>(kSteps), worst);
    EXPECT_LE(worst, 1e-6);
  }
}

}  // namespace
}  // namespace bpo::learner
