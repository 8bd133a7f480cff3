// `bpo task generate` and `bpo eval` end to end on the tiny fixture models.
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

testing::CommandResult Bpo(std::vector<std::string> args) {
  args.insert(args.begin(), BPO_BINARY);
  args.push_back("--log_level=warning");
  auto r = testing::RunCommand(args, absl::Seconds(300));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : testing::CommandResult{};
}

TEST(EvalCliTest, GeneratesATaskAndEvaluatesAPolicyAgainstItsReferences) {
  const std::string dir =
      (fs::temp_directory_path() / absl::StrCat("bpo_eval_", getpid())).string();
  fs::remove_all(dir);
  auto gen = Bpo({"task", "generate", "--task=dialogue", "--out=" + dir, "--sft_size=10",
                  "--alignment_size=10", "--test_size=6"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_THAT(gen.out, HasSubstr("6 test prompts with references"));
  const std::string fixtures = absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures");
  auto r = Bpo({"eval", "--model=" + fixtures + "/gemma", "--test_prompts=" + dir + "/test.jsonl",
                "--task=dialogue", "--reward_model=" + fixtures + "/deberta", "--max_new_tokens=8",
                "--json", "--json_out=" + dir + "/eval.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("oracle:dialogue"));
  const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
  EXPECT_EQ(j["n"], 6);
  for (const char* judge : {"oracle:dialogue"}) {
    const double w = j["judges"][judge]["win_rate"];
    EXPECT_GE(w, 0.0);
    EXPECT_LE(w, 1.0);
  }
  std::ifstream in(dir + "/eval.json");
  const auto full = nlohmann::json::parse(in);
  ASSERT_EQ(full["items"].size(), 6u);
  const std::string other = full["items"][0]["other"];
  EXPECT_EQ(other.front(), ' ');
  // Every per-prompt score pair is there, per judge.
  EXPECT_EQ(full["items"][0]["scores"].size(), 2u);
}

// The newcomer's path: task data, a tokenizer and a small model trained from
// scratch by `bpo sft`, then `bpo eval` of that model.
TEST(EvalCliTest, SftFromScratchWritesAModelThatEvalLoads) {
  const std::string dir =
      (fs::temp_directory_path() / absl::StrCat("bpo_sft_cli_", getpid())).string();
  fs::remove_all(dir);
  ASSERT_EQ(Bpo({"task", "generate", "--task=dialogue", "--out=" + dir, "--sft_size=400",
                 "--alignment_size=20", "--test_size=10"})
                .exit_code,
            0);
  auto sft = Bpo({"sft", "--sft_data=" + dir + "/sft.jsonl", "--model_out=" + dir + "/sft",
                  "--sft_steps=60", "--sft_batch=16", "--vocab_size=400", "--hidden_size=64"});
  ASSERT_EQ(sft.exit_code, 0) << sft.err;
  EXPECT_THAT(sft.out, HasSubstr("wrote " + dir + "/sft (loss "));
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"}) {
    EXPECT_TRUE(fs::exists(dir + "/sft/" + f)) << f;
  }
  auto r = Bpo({"eval", "--model=" + dir + "/sft", "--test_prompts=" + dir + "/test.jsonl",
                "--task=dialogue", "--max_new_tokens=12"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("on 10 test prompts"));
  // LoRA fine-tuning of a loaded HF model, merged into the written model.
  auto lora = Bpo({"sft", "--sft_data=" + dir + "/sft.jsonl", "--model_out=" + dir + "/lora",
                   "--init=" + std::string(BPO_SOURCE_DIR) + "/tests/fixtures/llama",
                   "--sft_lora_rank=4", "--sft_steps=5", "--sft_batch=4"});
  ASSERT_EQ(lora.exit_code, 0) << lora.err;
  EXPECT_THAT(lora.out, HasSubstr("LoRA rank 4 merged at the end"));
  auto lora_eval = Bpo({"eval", "--model=" + dir + "/lora", "--test_prompts=" + dir + "/test.jsonl",
                        "--task=dialogue", "--max_new_tokens=4"});
  EXPECT_EQ(lora_eval.exit_code, 0) << lora_eval.err;
  auto bad = Bpo({"sft", "--sft_data=" + dir + "/test.jsonl", "--model_out=" + dir + "/x"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err,
              HasSubstr("test.jsonl:1: needs an object with string \"prompt\" and \"response\""));

  // A reward model trained on pairs sampled from that policy and labelled by
  // the oracle, then used as an eval judge, with sampled outputs too.
  auto rm = Bpo({"train-rm", "--policy=" + dir + "/sft", "--rm_prompts=" + dir + "/sft.jsonl",
                 "--task=dialogue", "--rm_pairs=80", "--rm_steps=20", "--rm_batch=8",
                 "--rm_hidden_size=32", "--rm_layers=1", "--rm_vocab_size=400",
                 "--rm_max_new_tokens=12", "--rm_out=" + dir + "/rm"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err << rm.out;
  EXPECT_THAT(rm.out, HasSubstr("held-out accuracy against the oracle"));
  for (const char* f : {"config.json", "model.safetensors", "spm.model", "train_rm.json"}) {
    EXPECT_TRUE(fs::exists(dir + "/rm/" + f)) << f;
  }
  std::ifstream rm_in(dir + "/rm/train_rm.json");
  const auto rm_json = nlohmann::json::parse(rm_in);
  EXPECT_GT(rm_json["heldout_pairs"].get<int>(), 0);
  EXPECT_GE(rm_json["heldout_accuracy"].get<double>(), 0.0);
  auto judged = Bpo({"eval", "--model=" + dir + "/sft", "--test_prompts=" + dir + "/test.jsonl",
                     "--task=dialogue", "--reward_model=" + dir + "/rm", "--max_new_tokens=12",
                     "--eval_samples=3", "--json"});
  ASSERT_EQ(judged.exit_code, 0) << judged.err;
  const auto jj = nlohmann::json::parse(judged.out.substr(judged.out.rfind("\n{") + 1));
  EXPECT_EQ(jj["samples_per_prompt"], 3);
  for (const std::string& judge : {std::string("oracle:dialogue"), "rm:" + dir + "/rm"}) {
    ASSERT_TRUE(jj["judges"].contains(judge)) << judge;
    const double w = jj["judges"][judge]["sample_win_rate"];
    EXPECT_GE(w, 0.0);
    EXPECT_LE(w, 1.0);
  }
  // Bad input for train-rm: no oracle to label with, a malformed pair file,
  // a causal LM where a reward model belongs.
  auto no_task = Bpo({"train-rm", "--policy=" + dir + "/sft", "--rm_prompts=" + dir + "/sft.jsonl",
                      "--rm_out=" + dir + "/rm2"});
  EXPECT_EQ(no_task.exit_code, 1);
  EXPECT_THAT(no_task.err, HasSubstr("--task names the oracle"));
  std::ofstream(dir + "/prefs.jsonl")
      << "{\"prompt\": \"p\", \"chosen\": \" a\", \"rejected\": \" b\"}\n{\"prompt\": \"p\"}\n";
  auto bad_prefs =
      Bpo({"train-rm", "--preferences=" + dir + "/prefs.jsonl", "--rm_out=" + dir + "/rm3"});
  EXPECT_EQ(bad_prefs.exit_code, 1);
  EXPECT_THAT(bad_prefs.err, HasSubstr("prefs.jsonl:2: needs string"));
  auto wrong_rm = Bpo({"eval", "--model=" + dir + "/sft", "--test_prompts=" + dir + "/test.jsonl",
                       "--reward_model=" + dir + "/sft"});
  EXPECT_EQ(wrong_rm.exit_code, 1);
  EXPECT_THAT(wrong_rm.err, HasSubstr("unsupported architecture 'LlamaForCausalLM'"));
}

// bpo reproduce without runs: the report lists every planned run as not run;
// an unknown experiment group is a usage error.
TEST(EvalCliTest, ReproducePlansTheComparisonsAndReportsWhatRan) {
  const std::string dir =
      (fs::temp_directory_path() / absl::StrCat("bpo_repro_", getpid())).string();
  fs::remove_all(dir);
  auto r = Bpo({"reproduce", "--quick", "--report_only", "--reproduce_dir=" + dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(dir + "/report/report.md");
  std::string md((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(md, HasSubstr("## Table 1: win rate against the references"));
  EXPECT_THAT(md, HasSubstr("| t1-tldr-dpo-bpo-s3 | On-policy BPO (DPO) | 3 | not run |"));
  EXPECT_THAT(md, HasSubstr("| f4-tldr-F16-s1 | BPO (DPO), F = 16 | 1 | not run |"));
  EXPECT_THAT(md, HasSubstr("(0 of 88 runs finished)"));
  auto bad = Bpo({"reproduce", "--quick", "--only=table9", "--reproduce_dir=" + dir});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("unknown group 'table9'"));
  fs::remove_all(dir);
}

// The real TL;DR eval file, judged by the fixture reward model.
TEST(EvalCliTest, ReadsTheTldrCsvWithItsHumanReferences) {
  const std::string fixtures = absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures");
  auto r =
      Bpo({"eval", "--model=" + fixtures + "/llama",
           "--test_prompts=" + std::string(BPO_SOURCE_DIR) + "/../shared/data/tldr/oai1b.csv",
           "--reward_model=" + fixtures + "/deberta", "--limit=3", "--max_new_tokens=4", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
  EXPECT_EQ(j["n"], 3);
  EXPECT_TRUE(j["judges"].contains("rm:" + fixtures + "/deberta"));
}

TEST(EvalCliTest, AggregatesWinRatesOverTasksSeedsAndMethods) {
  const std::string dir = (fs::temp_directory_path() / absl::StrCat("bpo_agg_", getpid())).string();
  fs::create_directories(dir);
  std::vector<std::string> files;
  auto write = [&](const std::string& method, const std::string& task, int seed, double win) {
    const std::string f = absl::StrCat(dir, "/", method, "-", task, "-", seed, ".json");
    std::ofstream(f) << nlohmann::json{{"method", method},
                                       {"task", task},
                                       {"seed", seed},
                                       {"judges", {{"oracle:x", {{"win_rate", win}}}}}}
                            .dump();
    files.push_back(f);
  };
  write("bpo", "tldr", 1, 0.2);
  write("bpo", "tldr", 2, 0.4);
  write("bpo", "tldr", 3, 0.6);
  write("dpo", "tldr", 1, 0.1);
  std::vector<std::string> args = {"aggregate", "--aggregate_json=" + dir + "/agg.json"};
  args.insert(args.end(), files.begin(), files.end());
  auto r = Bpo(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(dir + "/agg.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_DOUBLE_EQ(j["bpo"]["median"]["estimate"].get<double>(), 0.4);
  EXPECT_NEAR(j["bpo"]["mean"]["estimate"].get<double>(), 0.4, 1e-12);
  EXPECT_EQ(j["bpo"]["runs"], 3);
  EXPECT_LE(j["bpo"]["mean"]["lower"].get<double>(), 0.4);
  EXPECT_GE(j["bpo"]["mean"]["upper"].get<double>(), 0.4);
  EXPECT_DOUBLE_EQ(j["dpo"]["iqm"]["estimate"].get<double>(), 0.1);
  std::ofstream(dir + "/nomethod.json") << R"({"judges": {"oracle:x": {"win_rate": 0.5}}})";
  auto bad = Bpo({"aggregate", dir + "/nomethod.json"});
  EXPECT_THAT(bad.err, HasSubstr("nomethod.json: no method name (bpo eval --method NAME)"));
}

TEST(EvalCliTest, BadInputGetsClearErrors) {
  const std::string fixtures = absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures");
  auto unknown = Bpo({"task", "generate", "--task=poetry", "--out=/tmp/x"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown task 'poetry'; known: tldr, dialogue"));
  const std::string dir =
      (fs::temp_directory_path() / absl::StrCat("bpo_eval_bad_", getpid())).string();
  fs::create_directories(dir);
  std::ofstream(dir + "/noref.jsonl")
      << "{\"id\": \"q1\", \"prompt\": \"Human: What is 1 plus 1? Assistant:\"}\n";
  auto noref = Bpo({"eval", "--model=" + fixtures + "/gemma",
                    "--test_prompts=" + dir + "/noref.jsonl", "--task=dialogue"});
  EXPECT_EQ(noref.exit_code, 1);
  EXPECT_THAT(noref.err, HasSubstr("prompt 'q1' has no \"reference\""));
  std::ofstream(dir + "/bad.jsonl") << "{\"prompt\": \"x\", \"reference\": \" y\"}\nnot json\n";
  auto bad = Bpo({"eval", "--model=" + fixtures + "/gemma", "--test_prompts=" + dir + "/bad.jsonl",
                  "--task=dialogue"});
  EXPECT_THAT(bad.err, HasSubstr("bad.jsonl:2: not a JSON object"));
  std::ofstream(dir + "/ok.jsonl")
      << "{\"prompt\": \"Human: What is 1 plus 1? Assistant:\", \"reference\": \" 2\"}\n";
  auto wrong_kind = Bpo({"eval", "--model=" + fixtures + "/deberta",
                         "--test_prompts=" + dir + "/ok.jsonl", "--task=dialogue"});
  EXPECT_EQ(wrong_kind.exit_code, 1);
  EXPECT_THAT(wrong_kind.err, HasSubstr("deberta"));
  auto no_judge =
      Bpo({"eval", "--model=" + fixtures + "/gemma", "--test_prompts=" + dir + "/ok.jsonl"});
  EXPECT_THAT(no_judge.err, HasSubstr("give --task (its oracle) and/or --reward_model"));
}

}  // namespace
}  // namespace bpo
