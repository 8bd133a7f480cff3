#include "eval/eval_result.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::eval {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return (fs::temp_directory_path() / absl::StrCat("bpo_eval_result_", getpid(), "_", name))
      .string();
}

EvalResult Sample() {
  EvalResult r;
  r.model = "/m/sft";
  r.adapter = "/m/adapter";
  r.against = "references";
  r.test_prompts = "/m/test.jsonl";
  r.task = "tldr";
  r.method = "BPO (DPO), F = 4";
  r.seed = 3;
  r.n = 2;
  r.max_new_tokens = 48;
  r.samples_per_prompt = 8;
  r.judges["oracle:tldr"] = {0.5, -0.25, 0.375, -0.125};
  r.judges["rm:/m/rm"] = {1.0, 2.5, kNotMeasured, kNotMeasured};
  r.items = std::vector<EvalItem>{{"p0", " out", " ref", {{"oracle:tldr", {0.5, 0.25}}}},
                                  {"p1", "", " ref2", {}}};
  return r;
}

TEST(EvalResultTest, RoundTripsThroughAFile) {
  const std::string path = TempPath("round_trip.json");
  const EvalResult in = Sample();
  ASSERT_TRUE(WriteEvalResult(in, path).ok());
  const absl::StatusOr<EvalResult> out = ReadEvalResult(path);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->model, in.model);
  EXPECT_EQ(out->adapter, in.adapter);
  EXPECT_EQ(out->task, "tldr");
  EXPECT_EQ(out->method, in.method);
  EXPECT_EQ(out->seed, 3);
  EXPECT_EQ(out->n, 2);
  EXPECT_EQ(out->max_new_tokens, 48);
  EXPECT_EQ(out->samples_per_prompt, 8);
  ASSERT_EQ(out->judges.size(), 2u);
  EXPECT_DOUBLE_EQ(out->judges.at("oracle:tldr").win_rate, 0.5);
  EXPECT_DOUBLE_EQ(out->judges.at("oracle:tldr").sample_mean_reward_diff, -0.125);
  EXPECT_DOUBLE_EQ(out->judges.at("rm:/m/rm").mean_reward_diff, 2.5);
  EXPECT_TRUE(std::isnan(out->judges.at("rm:/m/rm").sample_win_rate));
  ASSERT_TRUE(out->items.has_value());
  ASSERT_EQ(out->items->size(), 2u);
  EXPECT_EQ((*out->items)[0].output, " out");
  EXPECT_EQ((*out->items)[0].scores.at("oracle:tldr"), std::make_pair(0.5, 0.25));
  EXPECT_TRUE((*out->items)[1].scores.empty());
  fs::remove(path);
}

// The bytes `bpo eval --json_out` has always written (sorted keys, dump(1)).
TEST(EvalResultTest, WritesTheFormatBpoEvalAlwaysWrote) {
  EvalResult r;
  r.model = "m";
  r.against = "references";
  r.task = "dialogue";
  r.test_prompts = "t.jsonl";
  r.n = 1;
  r.max_new_tokens = 8;
  r.judges["oracle:dialogue"] = {0.25, -0.5};
  EXPECT_EQ(EvalResultToJson(r).dump(1),
            "{\n \"adapter\": \"\",\n \"against\": \"references\",\n \"judges\": {\n  "
            "\"oracle:dialogue\": {\n   \"mean_reward_diff\": -0.5,\n   \"win_rate\": 0.25\n  }\n "
            "},\n \"max_new_tokens\": 8,\n \"method\": \"\",\n \"model\": \"m\",\n \"n\": 1,\n "
            "\"seed\": 0,\n \"task\": \"dialogue\",\n \"test_prompts\": \"t.jsonl\"\n}");
}

TEST(EvalResultTest, ReadsAHandWrittenResultWithOnlyWinRates) {
  const auto r = EvalResultFromJson(
      nlohmann::json::parse(R"({"method": "bpo", "judges": {"oracle:x": {"win_rate": 0.5}}})"),
      "f.json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->method, "bpo");
  EXPECT_EQ(r->task, "");
  EXPECT_TRUE(std::isnan(r->judges.at("oracle:x").mean_reward_diff));
  EXPECT_FALSE(r->items.has_value());
  EXPECT_TRUE(r->Judge("oracle:x").ok());
  EXPECT_EQ(r->Judge("rm:y").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r->Judge("rm:y").status().message(), HasSubstr("no judge 'rm:y' (judges: oracle:x)"));
}

TEST(EvalResultTest, MalformedResultsNameTheFileAndTheField) {
  auto error = [](const std::string& text) {
    return EvalResultFromJson(nlohmann::json::parse(text), "/d/eval.json").status();
  };
  EXPECT_EQ(error("[1]").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(error("{}").message(), HasSubstr("/d/eval.json: judges: missing or empty"));
  EXPECT_THAT(error(R"({"judges": {}})").message(), HasSubstr("judges: missing or empty"));
  EXPECT_THAT(error(R"({"judges": {"oracle:x": {"mean_reward_diff": 1}}})").message(),
              HasSubstr("/d/eval.json: judges.oracle:x.win_rate: missing"));
  EXPECT_THAT(error(R"({"judges": {"oracle:x": {"win_rate": "high"}}})").message(),
              HasSubstr("/d/eval.json: judges.oracle:x.win_rate: expected a number"));
  EXPECT_THAT(error(R"({"seed": 1.5, "judges": {"o": {"win_rate": 1}}})").message(),
              HasSubstr("/d/eval.json: seed: expected an integer"));
  EXPECT_THAT(error(R"({"method": 3, "judges": {"o": {"win_rate": 1}}})").message(),
              HasSubstr("/d/eval.json: method: expected a string"));
  EXPECT_THAT(
      error(R"({"judges": {"o": {"win_rate": 1}}, "items": [{"scores": {"o": [1]}}]})").message(),
      HasSubstr("/d/eval.json: items[0].scores.o: expected [output score, other score]"));
}

TEST(EvalResultTest, FileErrorsNameThePath) {
  const std::string missing = TempPath("missing.json");
  const auto not_there = ReadEvalResult(missing);
  EXPECT_EQ(not_there.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(not_there.status().message(), HasSubstr(missing + ": cannot open"));
  const std::string bad = TempPath("bad.json");
  std::ofstream(bad) << "{\"judges\": ";
  const auto truncated = ReadEvalResult(bad);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(truncated.status().message(), HasSubstr(bad + ": not JSON"));
  fs::remove(bad);
  EXPECT_EQ(WriteEvalResult(Sample(), "/nonexistent-dir/x.json").code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace bpo::eval
