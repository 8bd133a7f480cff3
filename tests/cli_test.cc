// The `bpo` binary end to end: help, dispatch, config errors with exact
// messages, example configs, and clear errors for bad flags and busy ports.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/certs.h"
#include "common/files.h"
#include "common/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/http_client.h"
#include "tests/testing/https_client.h"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

testing::CommandResult Bpo(std::vector<std::string> args) {
  args.insert(args.begin(), BPO_BINARY);
  auto result = testing::RunCommand(args, absl::Seconds(120));
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : testing::CommandResult{};
}

TEST(CliTest, TopLevelHelpListsCommandsOneLineEach) {
  auto r = Bpo({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("\n  run                  Run the main job"));
  EXPECT_THAT(r.out, HasSubstr("\n  config check         Validate a run config"));
  EXPECT_THAT(r.out, HasSubstr("\n  info             "));
  EXPECT_THAT(r.out, HasSubstr("--log_level"));
  EXPECT_EQ(Bpo({}).exit_code, 2);
}

TEST(CliTest, CommandHelpListsOnlyItsFlags) {
  auto r = Bpo({"config", "check", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: bpo config check FILE"));
  EXPECT_THAT(r.out, HasSubstr("--skip_file_checks"));
  EXPECT_THAT(r.out, HasSubstr("--log_level"));
  EXPECT_THAT(r.out, Not(HasSubstr("--matmul_size")));
  EXPECT_THAT(Bpo({"info", "--help"}).out, HasSubstr("--matmul_size"));
  // Commands sharing one file's flags list only their own.
  const std::string score = Bpo({"score", "--help"}).out;
  EXPECT_THAT(score, HasSubstr("--reward_model"));
  EXPECT_THAT(score, Not(HasSubstr("--temperature")));
  auto foreign = Bpo({"score", "--temperature=2"});
  EXPECT_EQ(foreign.exit_code, 2);
  EXPECT_EQ(foreign.err,
            "bpo score: unknown flag --temperature (bpo score --help lists its flags)\n");
}

TEST(CliTest, BadCommandLines) {
  auto unknown = Bpo({"trian"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(
      unknown.err,
      "bpo: unknown command 'trian'; commands: quickstart, reproduce, run, local, deploy slurm, "
      "deploy status, deploy watch, coordinator, actor, "
      "annotator, annotator add-rater, learner, config check, config defaults, model info, "
      "generate, logprobs, score, "
      "task generate, sft, train-rm, eval, aggregate, certs init, certs issue, certs token, info "
      "(bpo --help)\n");
  auto foreign_flag = Bpo({"info", "--skip_file_checks"});
  EXPECT_EQ(foreign_flag.exit_code, 2);
  EXPECT_EQ(foreign_flag.err,
            "bpo info: unknown flag --skip_file_checks (bpo info --help lists its flags)\n");
  auto missing_arg = Bpo({"config", "check"});
  EXPECT_EQ(missing_arg.exit_code, 2);
  EXPECT_THAT(missing_arg.err, HasSubstr("bpo config check: expected 1 argument(s), got 0"));
  auto bad_level = Bpo({"config", "defaults", "--log_level=loud"});
  EXPECT_EQ(bad_level.exit_code, 2);
  EXPECT_EQ(bad_level.err,
            "bpo config defaults: unknown log level 'loud': expected debug, info, warning or "
            "error\n");
}

TEST(CliTest, EveryExampleConfigChecks) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(BPO_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    // Model directories of the examples exist only on the user's machine.
    auto r = Bpo({"config", "check", "--skip_file_checks", entry.path().string()});
    EXPECT_EQ(r.exit_code, 0) << entry.path() << "\n" << r.err;
    EXPECT_THAT(r.out, HasSubstr("# schedule (Algorithm 1)"));
    ++checked;
  }
  EXPECT_GE(checked, 5);
  auto r = Bpo({"config", "check", absl::StrCat(BPO_SOURCE_DIR, "/configs/tldr-bpo-f2.yaml")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("  phases: 2\n"));
  EXPECT_THAT(r.out, HasSubstr("  pairs_per_phase: 4800\n"));
  EXPECT_THAT(r.out, HasSubstr("# T = 600 steps, F = 2 phases, K = 300 steps/phase"));
}

TEST(CliTest, ConfigErrorsAreExactAndExitNonZero) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_cli_test_", getpid());
  fs::create_directories(dir);
  const std::string bad = (dir / "bad.yaml").string();
  std::ofstream(bad) << "schedule:\n  total_steps: 100\n  phases: 3\nlora:\n  rnak: 8\n";
  auto r = Bpo({"config", "check", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, absl::StrCat(bad, ":5:3: lora.rnak: unknown key 'rnak' (did you mean 'rank'?)\n",
                                "bpo config check: ", bad, ": 1 error\n"));

  std::ofstream(bad) << "schedule:\n  total_steps: 100\n  phases: 3\nloss: {beta: -1}\n";
  r = Bpo({"config", "check", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, absl::StrCat(bad,
                                ":3:3: schedule.phases: F = 3 does not divide "
                                "schedule.total_steps = 100\n",
                                bad, ":4:8: loss.beta: must be > 0, got -1\n",
                                "bpo config check: ", bad, ": 2 errors\n"));

  std::ofstream(bad) << "data: {prompts: [unclosed\n";
  r = Bpo({"config", "check", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat(bad, ":2:1: <yaml>: invalid YAML: ")));
  EXPECT_THAT(r.err, Not(HasSubstr("terminate")));

  r = Bpo({"config", "check", (dir / "absent.yaml").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("absent.yaml': cannot open: No such file or directory"));
  fs::remove_all(dir);
}

TEST(CliTest, ConfigCheckRefusesARunIdThatLeavesOutputDir) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_cli_run_id_test_", getpid());
  fs::create_directories(dir);
  const std::string bad = (dir / "escape.yaml").string();
  std::ofstream(bad) << "run_id: ../x\n";
  auto r = Bpo({"config", "check", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, absl::StrCat(bad,
                                ":1:1: run_id: '../x' starts with '.'; expected 1-64 characters of "
                                "[A-Za-z0-9._-], not starting with '.' or '-' (a single directory "
                                "name)\n",
                                "bpo config check: ", bad, ": 1 error\n"));
  fs::remove_all(dir);
}

TEST(CliTest, AnnotatorAddRaterPrintsTheSecretOnceAndStoresOnlyItsHash) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_cli_raters_test_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string raters = (dir / "raters").string();
  auto r = Bpo({"annotator", "add-rater", "--raters", raters, "alice"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex("[0-9a-f]{64}\n"));
  EXPECT_THAT(r.err, HasSubstr("added rater 'alice' to " + raters));
  EXPECT_THAT(r.err, Not(HasSubstr(r.out.substr(0, 64))));
  EXPECT_EQ(fs::status(raters).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  std::ifstream in(raters);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("\nalice pbkdf2-sha256$600000$"));
  EXPECT_THAT(text, Not(HasSubstr(r.out.substr(0, 64))));

  auto twice = Bpo({"annotator", "add-rater", "--raters", raters, "alice"});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_EQ(twice.out, "");
  EXPECT_THAT(twice.err, HasSubstr("already names rater 'alice'"));
  EXPECT_EQ(Bpo({"annotator", "add-rater", "alice"}).exit_code, 1);
  EXPECT_EQ(Bpo({"annotator", "add-rater", "--raters", raters}).exit_code, 2);
  EXPECT_EQ(Bpo({"annotator", "add-rater", "--raters", raters, "--kind=human", "bob"}).exit_code,
            2);
  EXPECT_THAT(Bpo({"annotator", "add-rater", "--help"}).out, Not(HasSubstr("--kind")));

  // The old plaintext format and the shared token are refused.
  const std::string plain = (dir / "plain").string();
  std::ofstream(plain) << "alice tok-alice\n";
  auto old = Bpo({"annotator", "--kind", "human", "--raters", plain});
  EXPECT_EQ(old.exit_code, 1);
  EXPECT_THAT(old.err, HasSubstr(plain + ":1: rater 'alice' has a plaintext token"));
  EXPECT_THAT(old.err, Not(HasSubstr("tok-alice")));
  EXPECT_THAT(Bpo({"annotator", "--kind", "human"}).err, HasSubstr("needs --raters FILE"));
  EXPECT_EQ(Bpo({"annotator", "--kind", "human", "--token", "x"}).exit_code, 2);
  fs::remove_all(dir);
}

TEST(CliTest, ConfigJsonAndDefaults) {
  auto json = Bpo(
      {"config", "check", "--format=json", absl::StrCat(BPO_SOURCE_DIR, "/configs/tiny-cpu.yaml")});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"total_steps\": 8"));
  EXPECT_THAT(json.out, HasSubstr("\"type\": \"DPO\""));
  auto defaults = Bpo({"config", "defaults"});
  EXPECT_EQ(defaults.exit_code, 0);
  EXPECT_THAT(defaults.out, HasSubstr("schedule:\n  total_steps: 625\n  phases: 625\n"));
  EXPECT_THAT(Bpo({"config", "check", "--format=xml",
                   absl::StrCat(BPO_SOURCE_DIR, "/configs/tiny-cpu.yaml")})
                  .exit_code,
              2);
}

// configs/tiny-cpu.yaml with its output (and the run's certificates) in a
// directory of the test's own.
std::string TinyConfigIn(const fs::path& dir) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ifstream in(absl::StrCat(BPO_SOURCE_DIR, "/configs/tiny-cpu.yaml"));
  std::stringstream text;
  text << in.rdbuf() << "output_dir: " << dir.string() << "\n";
  const std::string path = (dir / "tiny-cpu.yaml").string();
  std::ofstream(path) << text.str();
  return path;
}

TEST(CliTest, RunPlansTheScheduleAndServesMetrics) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_cli_run_", getpid());
  auto r = Bpo({"run", "--config", TinyConfigIn(dir), "--log_level=warning"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("run tiny-cpu"));
  EXPECT_THAT(r.out, HasSubstr("T = 8 steps, F = 2 phases, K = 4 steps/phase, B = 4"));
  // Over HTTPS with the run's certificates, which `bpo run` made.
  EXPECT_THAT(r.out, HasSubstr("metrics: https://127.0.0.1:"));
  EXPECT_TRUE(fs::exists(dir / "tiny-cpu" / "certs" / "ca.pem"));
  EXPECT_TRUE(fs::exists(dir / "tiny-cpu" / "certs" / "prometheus.key"));
  fs::remove_all(dir);
}

TEST(CliTest, RunOnABusyPortFailsClearly) {
  // Hold a port with a first `bpo run` (on port 0: the port it got is read
  // from /proc), then ask a second one for it.
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_cli_busy_", getpid());
  const std::string config = TinyConfigIn(dir);
  const fs::path log = dir / "hold.log";
  auto holder = testing::Subprocess::Start({BPO_BINARY, "run", "--config", config,
                                            "--metrics_address=127.0.0.1:0", "--serve_seconds=60"},
                                           log.string());
  ASSERT_TRUE(holder.ok());
  absl::StatusOr<int> listening = testing::ListeningPort(holder->pid());
  ASSERT_TRUE(listening.ok()) << listening.status();
  const int port = *listening;
  const std::string address = absl::StrCat("127.0.0.1:", port);
  // The holder serves its metrics (LibTorch is loaded in that process too),
  // over HTTPS to the run's prometheus certificate.
  bool serving = false;
  for (int attempt = 0; attempt < 200 && !serving; ++attempt) {
    bpo::v1::RunConfig run;
    run.mutable_security()->set_dir((dir / "tiny-cpu" / "certs").string());
    absl::StatusOr<TransportSecurity> scraper = LoadTransport(run, "prometheus");
    auto got = scraper.ok() ? testing::HttpsGet("127.0.0.1", port, "/metrics", *scraper)
                            : absl::StatusOr<testing::HttpsResult>(scraper.status());
    serving = got.ok() && got->status == 200 &&
              got->body.find("bpo_run_schedule{quantity=\"total_steps\"") != std::string::npos;
    if (!serving) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(serving);
  testing::CommandResult r =
      Bpo({"run", "--config", config, "--metrics_address=" + address, "--log_level=error"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("bpo run: cannot serve HTTP on ", address)));
  EXPECT_THAT(r.err, HasSubstr("in use"));
  fs::remove_all(dir);
}

TEST(CliTest, CertsMakesACaIssuesIdentitiesAndTokens) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_cli_certs_", getpid());
  fs::remove_all(dir);
  const std::string d = dir.string();
  auto init = Bpo({"certs", "init", "--dir", d});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  EXPECT_THAT(init.out, HasSubstr("keep it private"));
  EXPECT_EQ(Bpo({"certs", "init", "--dir", d}).exit_code, 1);  // one CA per directory
  auto issue = Bpo({"certs", "issue", "--dir", d, "--role", "actor", "--cert_name", "actor-7",
                    "--hosts", "node7,10.0.0.7", "--days", "30"});
  ASSERT_EQ(issue.exit_code, 0) << issue.err;
  EXPECT_THAT(issue.out, HasSubstr("issued actor:actor-7"));
  auto id = CertificateIdentity(ReadWholeFile((dir / "actor-7.pem").string()).value_or(""));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->ToString(), "actor:actor-7");
  auto bad_role = Bpo({"certs", "issue", "--dir", d, "--role", "root", "--cert_name", "x"});
  EXPECT_EQ(bad_role.exit_code, 1);
  EXPECT_THAT(bad_role.err, HasSubstr("unknown role 'root'"));
  EXPECT_EQ(Bpo({"certs", "issue", "--dir", d, "--role", "actor", "--cert_name", "../x"}).exit_code,
            1);
  const std::string tokens = (dir / "tokens").string();
  auto token = Bpo({"certs", "token", "--tokens_file", tokens, "--role", "annotator", "--cert_name",
                    "rating-tool"});
  ASSERT_EQ(token.exit_code, 0) << token.err;
  const std::string secret(absl::StripAsciiWhitespace(token.out));
  EXPECT_EQ(secret.size(), 64u);
  const std::string stored = ReadWholeFile(tokens).value_or("");
  EXPECT_THAT(stored, HasSubstr("annotator:rating-tool sha256:" + Sha256Hex(secret)));
  EXPECT_THAT(stored, Not(HasSubstr(secret)));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bpo
