// `bpo learner` offline mode end to end: it trains from the example config,
// and resume is exact — 12 steps in one go equal 3 steps, a clean stop, and
// the rest; and equal a run killed with SIGKILL mid-training and resumed
// (LoRA members bitwise equal; dropout is on, so the RNG state matters).
#include <ATen/ATen.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/safetensors.h"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::vector<std::string> LearnerArgs(const std::string& out) {
  return {BPO_BINARY,
          "learner",
          "--config",
          absl::StrCat(BPO_SOURCE_DIR, "/configs/learner-tiny.yaml"),
          "--pairs",
          absl::StrCat(BPO_SOURCE_DIR, "/configs/pairs-tiny.jsonl"),
          "--output",
          out,
          "--log_level=warning"};
}

testing::CommandResult RunBpo(std::vector<std::string> args) {
  auto r = testing::RunCommand(args, absl::Seconds(300));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : testing::CommandResult{};
}

std::string Temp(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / absl::StrCat("bpo_learner_", getpid(), "_", name);
  fs::remove_all(p);
  return p.string();
}

// Every tensor of both members' adapters must be bitwise equal.
void ExpectSameMembers(const std::string& a, const std::string& b) {
  for (int i = 0; i < 2; ++i) {
    const std::string rel =
        absl::StrCat("/learner-tiny/members/member", i, "/adapter_model.safetensors");
    auto fa = model::SafetensorsFile::Open(a + rel);
    auto fb = model::SafetensorsFile::Open(b + rel);
    ASSERT_TRUE(fa.ok() && fb.ok()) << fa.status() << fb.status();
    ASSERT_EQ((*fa)->header().tensors.size(), (*fb)->header().tensors.size());
    for (const auto& t : (*fa)->header().tensors) {
      EXPECT_TRUE(at::equal(*(*fa)->Tensor(t.name), *(*fb)->Tensor(t.name))) << t.name;
    }
  }
}

TEST(LearnerCliTest, TrainsFromTheExampleAndResumesExactly) {
  const std::string full = Temp("full");
  auto r = RunBpo(LearnerArgs(full));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("step 12/12"));
  EXPECT_TRUE(fs::exists(full + "/learner-tiny/adapter/adapter_model.safetensors"));
  // The chosen responses win: the last step's implicit reward accuracy is 1.
  std::ifstream log(full + "/learner-tiny/steps.jsonl");
  std::string line, last;
  int lines = 0;
  while (std::getline(log, line)) last = line, ++lines;
  EXPECT_EQ(lines, 12);
  EXPECT_THAT(last, HasSubstr("\"reward_accuracy\":1.0"));

  // 3 steps, a clean stop, then the rest.
  const std::string split = Temp("split");
  auto first = LearnerArgs(split);
  first.push_back("--max_steps=3");
  ASSERT_EQ(RunBpo(first).exit_code, 0);
  EXPECT_FALSE(fs::exists(split + "/learner-tiny/adapter"));
  auto rest = RunBpo(LearnerArgs(split));
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_THAT(rest.out, Not(HasSubstr("step 3/12")));
  EXPECT_THAT(rest.out, HasSubstr("step 4/12"));
  ExpectSameMembers(full, split);
}

TEST(LearnerCliTest, SurvivesSigkillAndResumesExactly) {
  const std::string full = Temp("full2");
  ASSERT_EQ(RunBpo(LearnerArgs(full)).exit_code, 0);
  const std::string killed = Temp("killed");
  const std::string log = killed + ".log";
  fs::create_directories(killed);
  bool killed_mid_run = false;
  {
    auto child = testing::Subprocess::Start(LearnerArgs(killed), log);
    ASSERT_TRUE(child.ok());
    const std::string marker = killed + "/learner-tiny/checkpoints/step-2/DONE";
    for (int i = 0; i < 60000 && !fs::exists(marker) && child->Running(); ++i) {
      absl::SleepFor(absl::Microseconds(500));
    }
    killed_mid_run = !fs::exists(killed + "/learner-tiny/adapter");
    kill(child->pid(), SIGKILL);
  }
  std::cout << "killed " << (killed_mid_run ? "mid-run" : "after the run had finished") << "\n";
  auto resumed = RunBpo(LearnerArgs(killed));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  ExpectSameMembers(full, killed);
}

// Two `bpo learner` processes with learner.world_size 2 (Gloo, file
// rendezvous) end where one process does (members within 1e-6).
TEST(LearnerCliTest, TwoRanksEqualOneRank) {
  const std::string dir = Temp("dp");
  fs::create_directories(dir);
  auto config = [&](int world) {
    const std::string path = absl::StrCat(dir, "/world", world, ".yaml");
    std::ofstream(path) << absl::StrCat(
        "run_id: dp\nschedule: {total_steps: 4, phases: 1, batch_size: 4}\n"
        "lora: {members: 2, rank: 4, alpha: 8, dropout: 0.0}\nsampling: {max_new_tokens: 32}\n"
        "model: {policy: ",
        BPO_SOURCE_DIR,
        "/tests/fixtures/gemma}\n"
        "learner: {world_size: ",
        world,
        ", checkpoint_every: 2}\n"
        "endpoints: {metrics: \"127.0.0.1:0\"}\n");
    return path;
  };
  auto args = [&](int world, const std::string& out) {
    return std::vector<std::string>{
        BPO_BINARY,    "learner", "--config",
        config(world), "--pairs", absl::StrCat(BPO_SOURCE_DIR, "/configs/pairs-tiny.jsonl"),
        "--output",    out,       "--log_level=warning"};
  };
  ASSERT_EQ(RunBpo(args(1, dir + "/one")).exit_code, 0);
  auto rank1_args = args(2, dir + "/two");
  rank1_args.push_back("--rank=1");
  auto rank1 = testing::Subprocess::Start(rank1_args, dir + "/rank1.log");
  ASSERT_TRUE(rank1.ok());
  auto rank0_args = args(2, dir + "/two");
  rank0_args.push_back("--rank=0");
  auto r0 = RunBpo(rank0_args);
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  EXPECT_TRUE(fs::exists(dir + "/two/dp/checkpoints/step-4/rank-1.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/two/dp/checkpoints/step-4/DONE"));
  for (int i = 0; i < 2; ++i) {
    const std::string rel = absl::StrCat("/dp/members/member", i, "/adapter_model.safetensors");
    auto a = model::SafetensorsFile::Open(dir + "/one" + rel);
    auto b = model::SafetensorsFile::Open(dir + "/two" + rel);
    ASSERT_TRUE(a.ok() && b.ok());
    double worst = 0;
    for (const auto& t : (*a)->header().tensors) {
      worst = std::max(worst,
                       (*(*a)->Tensor(t.name) - *(*b)->Tensor(t.name)).abs().max().item<double>());
    }
    EXPECT_LE(worst, 1e-6) << "member " << i;
  }
}

TEST(LearnerCliTest, PublishesContentHashedSnapshots) {
  auto args = LearnerArgs(Temp("snap"));
  args.push_back("--snapshot_every=6");
  auto r = RunBpo(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("snapshot v0 at step 0: "));
  EXPECT_THAT(r.out, HasSubstr("snapshot v1 at step 6: "));
  EXPECT_THAT(r.out, HasSubstr("snapshot v2 at step 12: "));
}

TEST(LearnerCliTest, BadInputIsNamed) {
  const std::string out = Temp("bad");
  const std::string pairs = out + ".jsonl";
  std::ofstream(pairs) << "{\"prompt\": \"a\", \"chosen\": \"b\"}\n";
  auto args = LearnerArgs(out);
  args[5] = pairs;
  auto r = RunBpo(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, absl::StrCat("bpo learner: ", pairs, ":1: missing string field \"rejected\"\n"));
  std::ofstream(pairs) << "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n";
  r = RunBpo(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            absl::StrCat("bpo learner: ", pairs,
                         ": has 1 pairs; T*B = 12*4 = 48 are needed (each pair is used once)\n"));
  // A checkpoint made with another base model is refused, not silently reused.
  const std::string other = Temp("other");
  auto first = LearnerArgs(other);
  first.push_back("--max_steps=1");
  ASSERT_EQ(RunBpo(first).exit_code, 0);
  auto llama = LearnerArgs(other);
  llama.push_back(absl::StrCat("--policy=", BPO_SOURCE_DIR, "/tests/fixtures/llama"));
  r = RunBpo(llama);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("step-1/rank-0.safetensors: checkpoint model 'GemmaForCausalLM:"));
  EXPECT_THAT(r.err, HasSubstr("does not match this run's 'LlamaForCausalLM:"));
}

}  // namespace
}  // namespace bpo
