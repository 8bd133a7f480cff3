// The checkpoint tools end to end: `bpo model info`, `generate`, `logprobs`
// and `score` (also as `bpo model generate|logprobs|score`) on the parity
// fixtures, checked against HF's reference outputs.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

std::string Fixture(const std::string& rest) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", rest);
}

testing::CommandResult Bpo(std::vector<std::string> args) {
  args.insert(args.begin(), BPO_BINARY);
  auto r = testing::RunCommand(args, absl::Seconds(120));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : testing::CommandResult{};
}

std::vector<json> JsonLines(const std::string& out) {
  std::vector<json> rows;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    rows.push_back(json::parse(line));
  }
  return rows;
}

at::Tensor RefTensor(const std::string& arch, const std::string& name) {
  auto file = model::SafetensorsFile::Open(Fixture(arch + "/reference.safetensors"));
  EXPECT_TRUE(file.ok()) << file.status();
  return (*(*file)->Tensor(name)).clone();
}

json Reference(const std::string& arch) {
  std::ifstream in(Fixture(arch + "/reference.json"));
  return json::parse(in);
}

std::string TempFile(const std::string& name, const std::string& content) {
  const fs::path p = fs::temp_directory_path() / absl::StrCat("bpo_model_cli_", getpid(), name);
  std::ofstream(p) << content;
  return p.string();
}

TEST(ModelCliTest, InfoValidatesAndDescribes) {
  auto r = Bpo({"model", "info", "--json", Fixture("gemma2")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json info = json::parse(r.out);
  EXPECT_EQ(info["architecture"], "Gemma2ForCausalLM");
  EXPECT_EQ(info["layers"], 4);
  EXPECT_EQ(info["parameters"], info["stored_parameters"]);
  EXPECT_EQ(json::parse(Bpo({"model", "info", "--json", Fixture("deberta")}).out)["kind"],
            "reward model");
  auto missing = Bpo({"model", "info", "/nonexistent"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err,
            "bpo model info: /nonexistent/config.json: cannot open: No such file or directory\n");
}

TEST(ModelCliTest, GreedyGenerationEqualsHuggingFace) {
  const json ref = Reference("llama");
  std::string prompts;
  for (const auto& p : ref["gen_prompts"]) prompts += json{{"prompt", p}}.dump() + "\n";
  auto r = Bpo({"generate", "--model", Fixture("llama"), "--prompts",
                TempFile("prompts.jsonl", prompts), "--greedy", "--max_new_tokens=16", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = JsonLines(r.out);
  ASSERT_EQ(rows.size(), 2u);
  // HF's rows are padded after EOS; ours stop there.
  const at::Tensor hf = RefTensor("llama", "gen_output_ids");
  const int64_t eos = ref["eos_id"].get<int64_t>();
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<int64_t> expected;
    for (int64_t t = 0; t < hf.size(1); ++t) {
      expected.push_back(hf[i][t].item<int64_t>());
      if (expected.back() == eos) break;
    }
    EXPECT_EQ(rows[i]["token_ids"].get<std::vector<int64_t>>(), expected) << "row " << i;
    EXPECT_EQ(rows[i]["token_logprobs"].size(), expected.size());
    EXPECT_EQ(rows[i]["finished"].get<bool>(), expected.back() == eos);
  }
  // Row 0 of the fixture hits EOS, row 1 runs all 16 tokens (tests/fixtures/README.md).
  EXPECT_TRUE(rows[0]["finished"].get<bool>());
  EXPECT_EQ(rows[1]["token_ids"].size(), 16u);
}

TEST(ModelCliTest, SampledGenerationIsSeededAndSharesThePrompt) {
  const std::vector<std::string> args = {
      "generate",    "--model",   Fixture("gemma"), "--prompt",    "TL;DR:",
      "--samples=2", "--seed=11", "--top_k=20",     "--top_p=0.9", "--max_new_tokens=10",
      "--json"};
  auto a = Bpo(args), b = Bpo(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);  // reproducible
  const auto rows = JsonLines(a.out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_NE(rows[0]["token_ids"], rows[1]["token_ids"]);
}

TEST(ModelCliTest, LogprobsMatchTheFixture) {
  const json ref = Reference("gemma");
  auto r = Bpo({"logprobs", "--model", Fixture("gemma"), "--prompt",
                ref["lp_prompts"][0].get<std::string>(), "--response",
                ref["lp_responses"][0].get<std::string>(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_EQ(out["tokens"].get<int64_t>(), ref["lp_response_ids"][0].size() + 1);  // + EOS
  EXPECT_LT(out["sum"].get<double>(), 0);
}

TEST(ModelCliTest, ScoreEqualsHuggingFaceRewards) {
  const json ref = Reference("deberta");
  std::string pairs;
  for (const auto& p : ref["pairs"]) pairs += p.dump() + "\n";
  auto r = Bpo({"score", "--reward_model", Fixture("deberta"), "--pairs",
                TempFile("pairs.jsonl", pairs), "--max_length",
                std::to_string(ref["max_length"].get<int>()), "--batch_size=3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = JsonLines(r.out);
  ASSERT_EQ(rows.size(), ref["pairs"].size());
  // Tolerance as in model/deberta_parity_test.cc: 1e-4 of the largest |score|.
  const at::Tensor scores = RefTensor("deberta", "scores");
  const double scale = scores.abs().max().item<double>();
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_NEAR(rows[i]["reward"].get<double>(), scores[i].item<double>(), 1e-4 * scale);
  }
  auto bad = Bpo({"score", "--reward_model", Fixture("deberta"), "--pairs",
                  TempFile("bad.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\nnot json\n")});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("bad.jsonl:2: not a JSON object"));
}

// `bpo model generate|logprobs|score` are aliases of the short commands:
// same flags, same output, listed in the help.
TEST(ModelCliTest, LongFormsUnderModelRunTheSameCommands) {
  const std::vector<std::string> generate = {"--model",  Fixture("llama"),     "--prompt", "TL;DR:",
                                             "--greedy", "--max_new_tokens=6", "--json"};
  const json ref = Reference("gemma");
  const std::vector<std::string> logprobs = {
      "--model",    Fixture("gemma"),
      "--prompt",   ref["lp_prompts"][0].get<std::string>(),
      "--response", ref["lp_responses"][0].get<std::string>(),
      "--json"};
  const std::vector<std::string> score = {
      "--reward_model", Fixture("deberta"), "--prompt", "a", "--response", "b", "--json"};
  for (const auto& [command, flags] :
       {std::pair{"generate", generate}, {"logprobs", logprobs}, {"score", score}}) {
    std::vector<std::string> short_form = {command}, long_form = {"model", command};
    short_form.insert(short_form.end(), flags.begin(), flags.end());
    long_form.insert(long_form.end(), flags.begin(), flags.end());
    auto s = Bpo(short_form), l = Bpo(long_form);
    ASSERT_EQ(l.exit_code, 0) << command << ": " << l.err;
    EXPECT_FALSE(l.out.empty()) << command;
    EXPECT_EQ(l.out, s.out) << command;
    EXPECT_THAT(Bpo({"model", command, "--help"}).out,
                HasSubstr(absl::StrCat("   or: bpo model ", command)));
  }
  EXPECT_THAT(Bpo({"--help"}).out, HasSubstr("(also: model generate)\n"));
  auto foreign = Bpo({"model", "score", "--temperature=2"});
  EXPECT_EQ(foreign.exit_code, 2);
  EXPECT_EQ(foreign.err,
            "bpo model score: unknown flag --temperature (bpo model score --help lists its "
            "flags)\n");
}

TEST(ModelCliTest, MismatchedTokenizerIsNamed) {
  // The DeBERTa fixture's spm.model has fewer pieces; the Llama-2 one has more.
  auto r = Bpo({"generate", "--model", Fixture("llama"), "--prompt", "hi"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_mismatch_", getpid());
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"}) {
    fs::copy_file(Fixture(std::string("llama/") + f), dir / f,
                  fs::copy_options::overwrite_existing);
  }
  fs::copy_file(absl::StrCat(BPO_SOURCE_DIR, "/../shared/data/tokenizers/llama2-tokenizer.model"),
                dir / "tokenizer.model", fs::copy_options::overwrite_existing);
  auto mismatch = Bpo({"generate", "--model", dir.string(), "--prompt", "hi"});
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_THAT(mismatch.err, HasSubstr("tokenizer.model: 32000 pieces do not fit the 400-token "
                                      "embedding"));
  fs::remove_all(dir);
}

// A config.json that is valid JSON but nonsense ends in a clear error and
// exit code 1, never an uncaught exception or an abort.
TEST(ModelCliTest, NonsenseConfigsFailClearlyWithoutAborting) {
  struct Case {
    const char* key;
    json value;
    const char* error;
  };
  const std::vector<Case> cases = {
      {"architectures", json::array({1}), "architectures: expected a list of class names, got [1]"},
      {"num_hidden_layers", json(int64_t{1} << 40),
       "num_hidden_layers: must be in [1, 4096], got 1099511627776"},
      {"hidden_size", json(int64_t{1} << 40), "hidden_size: must be in [1, 2147483648]"},
  };
  for (const Case& c : cases) {
    const fs::path dir =
        fs::temp_directory_path() / absl::StrCat("bpo_model_cli_", getpid(), "_", c.key);
    fs::remove_all(dir);
    fs::copy(Fixture("llama"), dir, fs::copy_options::recursive);
    json config = json::parse(std::ifstream(dir / "config.json"));
    config[c.key] = c.value;
    std::ofstream(dir / "config.json") << config.dump();
    for (const char* command : {"info", "logprobs"}) {
      std::vector<std::string> args = {"model", command, dir.string()};
      if (std::string(command) == "logprobs")
        args = {"logprobs", "--model", dir.string(), "--prompt", "a", "--response", "b"};
      auto r = Bpo(args);
      EXPECT_EQ(r.exit_code, 1) << c.key << " " << command << "\n" << r.err;
      EXPECT_THAT(r.err, HasSubstr(c.error)) << c.key << " " << command;
      EXPECT_THAT(r.err, ::testing::Not(HasSubstr("internal error"))) << c.key << " " << command;
    }
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace bpo
