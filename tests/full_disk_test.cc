// A full disk, for real: each test mounts its own small tmpfs (ctest starts
// this binary under `unshare --map-root-user --mount`, so the mounts are
// private to it and vanish with it), fills it, and checks that the
// coordinator's store, the learner's snapshot writer and its checkpoints
// fail with an error that names the path, lose nothing that was committed,
// leave no partial file that could pass for a complete one, and work again
// once space is freed.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "coordinator/run_store.h"
#include "coordinator/sqlite.h"
#include "coordinator/testing/in_process_coordinator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "learner/checkpoint.h"
#include "learner/trainer.h"
#include "model/causal_lm.h"
#include "model/lora.h"
#include "model/safetensors.h"
#include "snapshot/snapshot.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Fixture(const std::string& rest) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", rest);
}

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "bpo_full_disk_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    ASSERT_EQ(::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=4m"), 0)
        << "cannot mount a tmpfs on " << dir_ << ": " << std::strerror(errno)
        << " (ctest runs this test under `unshare --map-root-user --mount`; run it the same way)";
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    ::rmdir(dir_.c_str());
  }

  // Grows a filler file until the file system refuses one more byte.
  void Fill() {
    const std::string path = dir_ + "/filler";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    static const char kBlock[4096] = {};
    for (size_t n = sizeof(kBlock); n > 0;) {
      if (::write(fd, kBlock, n) < 0) {
        ASSERT_EQ(errno, ENOSPC) << std::strerror(errno);
        n /= 2;  // the last blocks, then the last bytes
      }
    }
    ::close(fd);
  }
  void Free() { fs::remove(dir_ + "/filler"); }

  // Files under dir_ whose names contain ".tmp" (a write that was not
  // cleaned up).
  std::vector<std::string> TempFiles() {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      if (e.path().filename().string().find(".tmp") != std::string::npos)
        out.push_back(e.path().string());
    }
    return out;
  }

  std::string dir_;
  bool mounted_ = false;
};

TEST_F(FullDiskTest, TheStoreRefusesWritesWithAClearErrorAndLosesNothing) {
  const std::string path = dir_ + "/store.db";
  std::vector<bpo::v1::Prompt> prompts(20);
  for (int i = 0; i < 20; ++i) prompts[i].set_text(absl::StrCat("prompt number ", i));
  const bpo::v1::RunConfig config = coordinator::testing::SmallRunConfig();
  auto store = coordinator::RunStore::Open(config, prompts, {.path = path, .fsync = true});
  ASSERT_TRUE(store.ok()) << store.status();
  Fill();
  // Register workers (each a committed transaction) until the disk is full.
  int registered = 0;
  absl::Status failure;
  for (int i = 0; i < 5000 && failure.ok(); ++i) {
    bpo::v1::RegisterRequest r;
    r.mutable_worker()->set_kind(bpo::v1::WORKER_KIND_ACTOR);
    r.mutable_worker()->set_name(absl::StrCat("actor-", i, "-", std::string(200, 'x')));
    auto out = (*store)->Register(r);
    if (out.ok()) {
      ++registered;
    } else {
      failure = out.status();
    }
  }
  ASSERT_FALSE(failure.ok()) << "5000 registrations fitted on a full 4 MiB disk";
  EXPECT_THAT(failure.message(), HasSubstr(path));
  EXPECT_THAT(absl::AsciiStrToLower(failure.message()), HasSubstr("full"));
  // Space again: the store goes on where it stopped, and holds exactly the
  // registrations that succeeded, also after a reopen.
  Free();
  bpo::v1::RegisterRequest r;
  r.mutable_worker()->set_kind(bpo::v1::WORKER_KIND_ACTOR);
  r.mutable_worker()->set_name("after");
  auto after = (*store)->Register(r);
  ASSERT_TRUE(after.ok()) << after.status() << " (full: " << failure << ")";
  store->reset();
  auto again = coordinator::RunStore::Open(config, prompts, {.path = path, .fsync = true});
  ASSERT_TRUE(again.ok()) << again.status();
  again->reset();
  auto db = coordinator::Database::Open(path, {.fsync = true});
  ASSERT_TRUE(db.ok()) << db.status();
  auto check = (*db)->Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.ok());
  ASSERT_TRUE(*(*check)->Step());
  EXPECT_EQ((*check)->Text(0), "ok");
  auto count = (*db)->Prepare("SELECT COUNT(*) FROM workers");
  ASSERT_TRUE(count.ok());
  ASSERT_TRUE(*(*count)->Step());
  EXPECT_EQ((*count)->Int(0), registered + 1);
}

TEST_F(FullDiskTest, ASnapshotThatDoesNotFitIsNotPublishedAndLeavesNoPartialFile) {
  snapshot::SnapshotStore snapshots({.shared_dir = dir_ + "/snapshots"});
  const std::string v0(100 << 10, 'a');
  ASSERT_TRUE(snapshots.Publish(0, 0, v0).ok());
  Fill();
  auto v1 = snapshots.Publish(1, 2, std::string(200 << 10, 'b'));
  ASSERT_FALSE(v1.ok());
  EXPECT_THAT(v1.status().message(), HasSubstr(dir_ + "/snapshots/snapshot-1.safetensors"));
  EXPECT_THAT(v1.status().message(), HasSubstr("No space left on device"));
  EXPECT_FALSE(snapshots.Get(1).ok()) << "a version whose file failed is not served";
  EXPECT_FALSE(fs::exists(dir_ + "/snapshots/snapshot-1.sha256")) << "no completion marker";
  EXPECT_THAT(TempFiles(), ::testing::IsEmpty());
  auto kept = ReadWholeFile(dir_ + "/snapshots/snapshot-0.safetensors");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, v0);
  Free();
  EXPECT_TRUE(snapshots.Publish(1, 2, std::string(200 << 10, 'b')).ok());
  EXPECT_TRUE(fs::exists(dir_ + "/snapshots/snapshot-1.sha256"));
}

TEST_F(FullDiskTest, ACheckpointThatDoesNotFitIsNeverTakenForComplete) {
  auto model = model::CausalLm::Load(Fixture("gemma"));
  ASSERT_TRUE(model.ok()) << model.status();
  auto lora = model::LoraEnsemble::LoadPeft(**model, {Fixture("learner/train_step/init")});
  ASSERT_TRUE(lora.ok()) << lora.status();
  auto batch_file = model::SafetensorsFile::Open(Fixture("learner/train_step/batch.safetensors"));
  ASSERT_TRUE(batch_file.ok());
  learner::PairBatch batch;
  batch.input_ids = (*(*batch_file)->Tensor("input_ids")).clone();
  batch.attention_mask = (*(*batch_file)->Tensor("attention_mask")).clone();
  batch.response_mask = (*(*batch_file)->Tensor("response_mask")).clone();
  batch.behavior_versions.assign(batch.pairs(), 0);
  learner::TrainerOptions o;
  o.reference = learner::ReferenceMode::kSft;
  o.total_steps = 4;
  learner::EnsembleTrainer trainer(model->get(), lora->get(), o);
  const learner::CheckpointMeta meta{.run_id = "full-disk", .model_signature = "test"};
  const std::string ckpt = dir_ + "/checkpoints";
  ASSERT_TRUE(learner::SaveCheckpoint(ckpt, 0, 1, meta, trainer, **lora, {}).ok());
  ASSERT_TRUE(trainer.Step(batch).ok());
  Fill();
  const absl::Status full = learner::SaveCheckpoint(ckpt, 0, 1, meta, trainer, **lora, {});
  ASSERT_FALSE(full.ok());
  EXPECT_THAT(full.message(), HasSubstr(ckpt + "/step-1"));
  EXPECT_THAT(full.message(), HasSubstr("No space left on device"));
  EXPECT_FALSE(fs::exists(ckpt + "/step-1/DONE"));
  EXPECT_THAT(TempFiles(), ::testing::IsEmpty());
  auto latest = learner::LatestCheckpoint(ckpt);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(*latest, ckpt + "/step-0");
  Free();
  ASSERT_TRUE(learner::SaveCheckpoint(ckpt, 0, 1, meta, trainer, **lora, {}).ok());
  latest = learner::LatestCheckpoint(ckpt);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(*latest, ckpt + "/step-1");
  learner::EnsembleTrainer restored(model->get(), lora->get(), o);
  auto state = learner::LoadCheckpoint(*latest, 0, meta, restored, **lora);
  EXPECT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(restored.steps_done(), 1);
}

}  // namespace
}  // namespace bpo
