#include "common/config.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "common/config_internal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<RunConfigFile> Parse(const std::string& yaml, ConfigOptions options = {}) {
  return ParseRunConfig(yaml, "run.yaml", "/base", options);
}

// The whole error text of a config that must fail with INVALID_ARGUMENT.
std::string ErrorOf(const std::string& yaml) {
  auto result = Parse(yaml);
  EXPECT_FALSE(result.ok()) << yaml;
  if (result.ok()) return "";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(result.status().message());
}

TEST(ConfigTest, EmptyFileGivesTheAuthorsDefaults) {
  auto file = Parse("");
  ASSERT_TRUE(file.ok()) << file.status();
  const auto& c = file->config;
  EXPECT_EQ(c.schedule().total_steps(), 625);
  EXPECT_EQ(c.schedule().phases(), 625);
  EXPECT_EQ(c.schedule().batch_size(), 16);
  EXPECT_EQ(c.schedule().pairs_per_phase(), 16);  // resolved to K*B
  EXPECT_EQ(c.loss().type(), v1::LossConfig::DPO);
  EXPECT_DOUBLE_EQ(c.loss().beta(), 0.1);
  EXPECT_EQ(c.reference().mode(), v1::ReferenceConfig::BEHAVIOR);
  EXPECT_EQ(c.lora().members(), 5);
  EXPECT_EQ(c.lora().rank(), 256);
  EXPECT_DOUBLE_EQ(c.lora().alpha(), 512);
  EXPECT_DOUBLE_EQ(c.lora().dropout(), 0.1);
  EXPECT_THAT(c.lora().target_modules(), ::testing::ElementsAre("all-linear"));
  EXPECT_DOUBLE_EQ(c.optimizer().learning_rate(), 5e-5);
  EXPECT_DOUBLE_EQ(c.optimizer().adam_eps(), 1e-6);
  EXPECT_DOUBLE_EQ(c.optimizer().grad_clip(), 1.0);
  EXPECT_EQ(c.sampling().top_k(), 50);
  EXPECT_EQ(c.sampling().max_new_tokens(), 128);
  EXPECT_EQ(c.annotation().rm_max_length(), 640);
  EXPECT_EQ(c.run_id(), "run");
  EXPECT_EQ(c.output_dir(), "/base/runs");
  EXPECT_EQ(c.seeds().prompts(), 42u);
}

TEST(ConfigTest, ValuesOverrideDefaultsAndPathsResolveAgainstTheFile) {
  auto file = Parse(R"(
run_id: tldr-f2
schedule: {total_steps: 600, phases: 2, batch_size: 16}
loss:
  type: IPO
  beta: 0.5
lora:
  members: 1
  target_modules: [q_proj, v_proj]
  merge_mode: mean_delta
model: {policy: models/gemma, device: "cuda:1"}
)",
                    ConfigOptions{.check_files = false});
  ASSERT_TRUE(file.ok()) << file.status();
  const auto& c = file->config;
  EXPECT_EQ(c.run_id(), "tldr-f2");
  EXPECT_EQ(StepsPerPhase(c), 300);
  EXPECT_EQ(PairsPerPhase(c), 4800);
  EXPECT_EQ(c.loss().type(), v1::LossConfig::IPO);
  EXPECT_EQ(c.lora().merge_mode(), v1::LoraConfig::MEAN_DELTA);
  EXPECT_THAT(c.lora().target_modules(), ::testing::ElementsAre("q_proj", "v_proj"));
  EXPECT_EQ(c.model().policy(), "/base/models/gemma");
  EXPECT_EQ(c.model().tokenizer(), "/base/models/gemma/tokenizer.model");
  EXPECT_EQ(file->positions.at("loss.beta").line, 6);
  EXPECT_EQ(file->positions.at("loss.beta").column, 3);
  EXPECT_EQ(file->positions.at("lora.target_modules[1]").line, 9);
}

TEST(ConfigTest, UnknownKeySuggestsTheClosest) {
  EXPECT_EQ(ErrorOf("lora:\n  rnak: 8\n"),
            "run.yaml:2:3: lora.rnak: unknown key 'rnak' (did you mean 'rank'?)");
}

TEST(ConfigTest, UnknownKeyWithoutNeighbourListsKnownKeys) {
  EXPECT_EQ(ErrorOf("loss: {flavour: 1}\n"),
            "run.yaml:1:8: loss.flavour: unknown key 'flavour' (known keys: type, beta, "
            "logprob_reduction, label_smoothing)");
}

TEST(ConfigTest, WrongTypes) {
  EXPECT_EQ(ErrorOf("schedule:\n  total_steps: many\n"),
            "run.yaml:2:16: schedule.total_steps: expected an integer, got 'many'");
  EXPECT_EQ(ErrorOf("schedule:\n  total_steps: \"600\"\n"),
            "run.yaml:2:16: schedule.total_steps: expected an integer, got the quoted string "
            "\"600\"");
  EXPECT_EQ(ErrorOf("schedule:\n  batch_size: 1.5\n"),
            "run.yaml:2:15: schedule.batch_size: expected an integer, got '1.5'");
  EXPECT_EQ(ErrorOf("schedule: {each_pair_once: yes}\n"),
            "run.yaml:1:28: schedule.each_pair_once: expected true or false, got 'yes'");
  EXPECT_EQ(ErrorOf("loss: {type: dop}\n"),
            "run.yaml:1:14: loss.type: expected one of dpo, ipo, slic, got 'dop'");
  EXPECT_EQ(ErrorOf("loss: [dpo]\n"), "run.yaml:1:7: loss: expected a mapping of keys, got a list");
  EXPECT_EQ(ErrorOf("lora: {target_modules: q_proj}\n"),
            "run.yaml:1:24: lora.target_modules: expected a list, got 'q_proj'");
  EXPECT_EQ(ErrorOf("seeds: {global: -1}\n"),
            "run.yaml:1:17: seeds.global: expected a non-negative integer, got '-1'");
  EXPECT_EQ(ErrorOf("loss: {beta: }\n"),
            "run.yaml:1:14: loss.beta: expected a number, got nothing");
  EXPECT_EQ(ErrorOf("schedule: {total_steps: 99999999999}\n"),
            "run.yaml:1:25: schedule.total_steps: expected an integer, got '99999999999'");
}

TEST(ConfigTest, SyntaxErrorsAndOddDocuments) {
  EXPECT_EQ(ErrorOf("loss: {type: dpo\n"),
            "run.yaml:2:1: <yaml>: invalid YAML: end of map flow not found");
  EXPECT_EQ(ErrorOf("- 1\n- 2\n"),
            "run.yaml:1:1: <top level>: expected a mapping of keys, got a list");
  EXPECT_EQ(ErrorOf("loss: {}\n---\nloss: {}\n"),
            "run.yaml:3:1: <yaml>: expected one YAML document, found a second one");
  // Found by fuzz/yaml_config_fuzzer: yaml-cpp's LoadAll never returns on a
  // top-level line starting with ',' (empty documents without end).
  EXPECT_EQ(ErrorOf(",a\n"),
            "run.yaml:1:1: <yaml>: expected one YAML document, found a second one");
  EXPECT_EQ(ErrorOf("# a comment\n,loss: {type: dpo}\n"),
            "run.yaml:2:1: <yaml>: expected one YAML document, found a second one");
  EXPECT_EQ(ErrorOf("loss: {beta: 1}\nloss: {beta: 2}\n"),
            "run.yaml:2:1: loss: duplicate key (first written at line 1)");
}

TEST(ConfigTest, InconsistentSchedule) {
  EXPECT_EQ(ErrorOf("schedule:\n  total_steps: 100\n  phases: 3\n"),
            "run.yaml:3:3: schedule.phases: F = 3 does not divide schedule.total_steps = 100");
  EXPECT_EQ(ErrorOf("schedule: {total_steps: 100, phases: 5, batch_size: 4, "
                    "pairs_per_phase: 100}\n"),
            "run.yaml:1:56: schedule.pairs_per_phase: M = 100 must equal K*B = 20*4 = 80 when "
            "schedule.each_pair_once is true");
  EXPECT_EQ(ErrorOf("schedule: {total_steps: 10, phases: 10, batch_size: 4, "
                    "pairs_per_phase: 3, each_pair_once: false}\n"),
            "run.yaml:1:56: schedule.pairs_per_phase: M = 3 is less than K*B = 4: the "
            "learner would run out of pairs");
  // A default that conflicts with a written value is named without a line.
  EXPECT_EQ(ErrorOf("schedule: {total_steps: 100}\n"),
            "run.yaml: schedule.phases: F = 625 does not divide schedule.total_steps = 100");
  // M > K*B is fine when pairs may go unused.
  EXPECT_TRUE(Parse("schedule: {total_steps: 10, phases: 10, batch_size: 4, "
                    "pairs_per_phase: 6, each_pair_once: false}\n")
                  .ok());
}

TEST(ConfigTest, OutOfRangeValues) {
  EXPECT_EQ(ErrorOf("loss:\n  beta: 0\n"), "run.yaml:2:3: loss.beta: must be > 0, got 0");
  EXPECT_EQ(ErrorOf("loss: {beta: -0.1}\n"), "run.yaml:1:8: loss.beta: must be > 0, got -0.1");
  EXPECT_EQ(ErrorOf("loss: {type: ipo, label_smoothing: 0.1}\n"),
            "run.yaml:1:19: loss.label_smoothing: only applies to loss.type dpo");
  EXPECT_EQ(ErrorOf("reference: {mode: static}\n"),
            "run.yaml: reference.static_adapter: required when reference.mode is static");
  EXPECT_EQ(ErrorOf("reference: {mode: ema, ema_rate: 1.5}\n"),
            "run.yaml:1:24: reference.ema_rate: must be in (0, 1], got 1.5");
  EXPECT_EQ(ErrorOf("sampling: {top_p: 0}\n"),
            "run.yaml:1:12: sampling.top_p: must be in (0, 1], got 0");
  EXPECT_EQ(ErrorOf("sampling: {samples_per_prompt: 3}\n"),
            "run.yaml:1:12: sampling.samples_per_prompt: must be 2 (a preference pair), got 3");
  EXPECT_EQ(ErrorOf("lora: {target_modules: [q_proj, qkv_proj, q_proj]}\n"),
            "run.yaml:1:33: lora.target_modules[1]: unknown module 'qkv_proj' (did you mean "
            "'q_proj'?); expected all-linear or some of q_proj, k_proj, v_proj, o_proj, "
            "gate_proj, up_proj, down_proj\n"
            "run.yaml:1:43: lora.target_modules[2]: 'q_proj' is listed twice");
  EXPECT_EQ(ErrorOf("model: {device: gpu}\n"),
            "run.yaml:1:9: model.device: expected cpu, cuda or cuda:N, got 'gpu'");
  EXPECT_EQ(ErrorOf("endpoints: {coordinator: localhost}\n"),
            "run.yaml:1:13: endpoints.coordinator: endpoint 'localhost': missing ':port' "
            "(expected host:port)");
  EXPECT_EQ(ErrorOf("learner: {world_size: 3}\n"),
            "run.yaml:1:11: learner.world_size: R = 3 does not divide schedule.batch_size = 16");
  EXPECT_EQ(ErrorOf("learner: {backend: nccl}\n"),
            "run.yaml:1:11: learner.backend: nccl needs a CUDA model.device, got cpu");
}

TEST(ConfigTest, AllErrorsAreReportedAtOnce) {
  const std::string error = ErrorOf("loss: {beta: 0}\nlora: {rank: 0, dropout: 1}\n");
  EXPECT_EQ(error,
            "run.yaml:1:8: loss.beta: must be > 0, got 0\n"
            "run.yaml:2:8: lora.rank: must be >= 1, got 0\n"
            "run.yaml:2:17: lora.dropout: must be in [0, 1), got 1");
}

TEST(ConfigTest, MissingFilesAreNamed) {
  EXPECT_EQ(ErrorOf("data: {prompts: nowhere/prompts.csv}\n"),
            "run.yaml:1:8: data.prompts: '/base/nowhere/prompts.csv' does not exist");
  EXPECT_TRUE(Parse("data: {prompts: nowhere/prompts.csv}\n", {.check_files = false}).ok());
}

TEST(ConfigTest, LoadRunConfigReadsFilesAndNamesMissingOnes) {
  const auto dir = std::filesystem::temp_directory_path() / "bpo_config_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "prompts.jsonl") << "{\"prompt\": \"hi\"}\n";
  std::ofstream(dir / "tiny.yaml") << "schedule: {total_steps: 4, phases: 2, batch_size: 2}\n"
                                      "data: {prompts: prompts.jsonl, format: jsonl}\n";
  auto file = LoadRunConfig((dir / "tiny.yaml").string());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->config.run_id(), "tiny");
  EXPECT_EQ(file->config.data().prompts(), (dir / "prompts.jsonl").string());

  auto missing = LoadRunConfig((dir / "absent.yaml").string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "config file '" + (dir / "absent.yaml").string() +
                                            "': cannot open: No such file or directory");
}

TEST(ConfigTest, EffectiveYamlRoundTrips) {
  auto file = Parse(
      "schedule: {total_steps: 6, phases: 3, batch_size: 2}\n"
      "loss: {type: slic, beta: 0.25}\nlora: {alpha: 16, target_modules: [q_proj]}\n"
      "model: {policy: \"we\\\"ird path\"}\n",
      {.check_files = false});
  ASSERT_TRUE(file.ok()) << file.status();
  const std::string yaml = FormatRunConfigYaml(file->config);
  EXPECT_THAT(yaml, HasSubstr("  type: slic\n  beta: 0.25\n"));
  EXPECT_THAT(yaml, HasSubstr("  alpha: 16.0\n"));
  EXPECT_THAT(yaml, HasSubstr("  learning_rate: 5e-05\n"));
  EXPECT_THAT(yaml, HasSubstr("  target_modules: [\"q_proj\"]\n"));
  auto again = ParseRunConfig(yaml, "effective.yaml", "/elsewhere", {.check_files = false});
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << yaml;
  EXPECT_EQ(FormatRunConfigYaml(again->config), yaml);
}

TEST(ConfigTest, BuiltInDefaultsAreValid) {
  const RunConfigFile defaults = DefaultRunConfig();
  EXPECT_EQ(defaults.config.run_id(), "bpo-run");
  auto reparsed = ParseRunConfig(FormatRunConfigYaml(defaults.config), "<defaults>", "/",
                                 {.check_files = false});
  EXPECT_TRUE(reparsed.ok()) << reparsed.status();
}

TEST(ConfigTest, RunIdMustBeASafeName) {
  const std::string allowed =
      "expected 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-' (a single "
      "directory name)";
  EXPECT_EQ(ErrorOf("run_id: ../../../../tmp/x\n"),
            "run.yaml:1:1: run_id: '../../../../tmp/x' starts with '.'; " + allowed);
  EXPECT_EQ(ErrorOf("run_id: /etc\n"),
            "run.yaml:1:1: run_id: '/etc' has '/' at offset 0; " + allowed);
  EXPECT_EQ(ErrorOf("run_id: ..\n"), "run.yaml:1:1: run_id: '..' starts with '.'; " + allowed);
  EXPECT_EQ(ErrorOf("run_id: -x\n"), "run.yaml:1:1: run_id: '-x' starts with '-'; " + allowed);
  EXPECT_EQ(ErrorOf("run_id: a/b\n"),
            "run.yaml:1:1: run_id: 'a/b' has '/' at offset 1; " + allowed);
  EXPECT_EQ(ErrorOf("run_id: " + std::string(65, 'a') + "\n"),
            "run.yaml:1:1: run_id: is 65 characters long; " + allowed);
  auto ok = Parse("run_id: tldr_f2.seed-1\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(Parse("run_id: " + std::string(64, 'a') + "\n").ok());
}

TEST(ConfigTest, RunIdFromAnUnsafeFileNameIsMadeSafe) {
  auto file = ParseRunConfig("", "/x/.my run (2).yaml", "/base");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->config.run_id(), "my-run--2-");
}

TEST(ConfigTest, StringsWithControlsSeparatorsOrBadUtf8AreRefused) {
  EXPECT_THAT(ErrorOf("data: {prompts: \"a\\0b\"}\n"),
              HasSubstr("run.yaml:1:8: data.prompts: contains a NUL byte at offset 7"));
  EXPECT_EQ(ErrorOf("output_dir: \"out\\r\"\n"),
            "run.yaml:1:1: output_dir: contains a carriage return at offset 9");
  EXPECT_EQ(ErrorOf("annotation: {rule: \"contains:a\\u2028b\"}\n"),
            "run.yaml:1:14: annotation.rule: contains U+2028 (a line separator) at offset 10");
  EXPECT_THAT(
      ErrorOf("model: {tokenizer: \"t\\u2029\"}\n"),
      HasSubstr("run.yaml:1:9: model.tokenizer: contains U+2029 (a line separator) at offset 7"));

  // Invalid UTF-8 cannot be written in YAML text; check the resolved proto.
  for (const std::string& bad : {std::string("a\xff"), std::string("\xc3"),
                                 std::string("\xed\xa0\x80"), std::string("\xc0\xaf")}) {
    v1::RunConfig c = DefaultRunConfig().config;
    c.mutable_learner()->set_snapshot_dir(bad);
    config_internal::ErrorList errors("run.yaml", nullptr);
    config_internal::Validate(c, ConfigOptions{.check_files = false}, &errors);
    absl::Status status = errors.ToStatus();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(bad);
    EXPECT_THAT(std::string(status.message()),
                HasSubstr("run.yaml: learner.snapshot_dir: is not valid UTF-8 (byte "));
  }
  EXPECT_TRUE(Parse("data: {prompts: \"caf\u00e9 \\U0001F600\\t.jsonl\"}\n",
                    ConfigOptions{.check_files = false})
                  .ok());
}

TEST(ConfigTest, AbsurdCountsAndSizesAreRefused) {
  EXPECT_EQ(ErrorOf("schedule: {total_steps: 1, phases: 1, batch_size: 2000000}\n"),
            "run.yaml:1:39: schedule.batch_size: must be <= 1048576, got 2000000");
  EXPECT_EQ(ErrorOf("lora: {members: 5000}\n"),
            "run.yaml:1:8: lora.members: must be <= 1024, got 5000");
  EXPECT_EQ(ErrorOf("launch: {actors: -1}\n"),
            "run.yaml:1:10: launch.actors: must be >= 1, got -1");
  EXPECT_EQ(ErrorOf("launch: {annotators: 100000}\n"),
            "run.yaml:1:10: launch.annotators: must be <= 1024, got 100000");
  EXPECT_EQ(ErrorOf("sampling: {max_new_tokens: 2000000}\n"),
            "run.yaml:1:12: sampling.max_new_tokens: must be <= 1048576, got 2000000");
}

TEST(ConfigTest, RunPathStaysInsideTheRunDirectory) {
  v1::RunConfig c;
  c.set_output_dir("/out");
  c.set_run_id("r1");
  EXPECT_EQ(RunPath(c).value(), "/out/r1");
  EXPECT_EQ(RunPath(c, "logs/learner.log").value(), "/out/r1/logs/learner.log");
  EXPECT_EQ(RunPath(c, "coordinator.db").value(), "/out/r1/coordinator.db");
  for (const char* escape : {"../x", "/etc/passwd", "a/../../x", ".", "a/.."}) {
    auto p = RunPath(c, escape);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << escape;
  }
  c.set_run_id("../../tmp");
  auto bad = RunPath(c);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("run_id: "));
}

}  // namespace
}  // namespace bpo
