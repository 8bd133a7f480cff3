#include "annotator/human_tokens.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "annotator/human_login.h"

namespace bpo::annotator {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

constexpr int kFast = kSecretHashIterationsMin;

std::string Slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class RatersFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "raters").string();
  }

  absl::StatusOr<std::map<std::string, SecretHash>> Load(const std::string& text) {
    std::ofstream(path_) << text;
    return LoadRaters(path_);
  }

  fs::path dir_;
  std::string path_;
};

TEST(SecretHashTest, MatchesOnlyItsSecretAndRoundTripsThroughText) {
  auto secret = NewRaterSecret();
  ASSERT_TRUE(secret.ok());
  EXPECT_THAT(*secret, MatchesRegex("[0-9a-f]{64}"));
  EXPECT_NE(*secret, *NewRaterSecret());
  auto hash = HashSecret(*secret, kFast);
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_EQ(hash->salt.size(), 16u);
  EXPECT_EQ(hash->hash.size(), 32u);
  EXPECT_TRUE(SecretMatches(*secret, *hash));
  EXPECT_FALSE(SecretMatches(secret->substr(1), *hash));
  EXPECT_FALSE(SecretMatches("", *hash));
  EXPECT_NE(HashSecret(*secret, kFast)->salt, hash->salt) << "a fresh salt per hash";

  const std::string text = FormatSecretHash(*hash);
  EXPECT_THAT(text, MatchesRegex("pbkdf2-sha256\\$1000\\$[0-9a-f]{32}\\$[0-9a-f]{64}"));
  EXPECT_THAT(text, Not(HasSubstr(*secret)));
  auto parsed = ParseSecretHash(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(SecretMatches(*secret, *parsed));

  EXPECT_EQ(HashSecret("x", 999).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ParseSecretHash("pbkdf2-sha1$1000$00$" + std::string(64, '0')).status().message(),
              HasSubstr("expected a hash"));
  EXPECT_THAT(ParseSecretHash("pbkdf2-sha256$10$00$" + std::string(64, '0')).status().message(),
              HasSubstr("iterations '10'"));
  EXPECT_THAT(ParseSecretHash("pbkdf2-sha256$1000$0g$" + std::string(64, '0')).status().message(),
              HasSubstr("hex"));
  EXPECT_THAT(ParseSecretHash("pbkdf2-sha256$1000$00$abcd").status().message(),
              HasSubstr("64 hex digits"));
}

TEST_F(RatersFileTest, AddRaterCreatesAPrivateFileOfHashesAndShowsTheSecretOnlyToTheCaller) {
  auto alice = AddRater(path_, "alice", kFast);
  ASSERT_TRUE(alice.ok()) << alice.status();
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto bob = AddRater(path_, "bob", kFast);
  ASSERT_TRUE(bob.ok()) << bob.status();
  EXPECT_NE(*alice, *bob);

  const std::string text = Slurp(path_);
  EXPECT_THAT(text, Not(HasSubstr(*alice)));
  EXPECT_THAT(text, Not(HasSubstr(*bob)));
  EXPECT_THAT(text, HasSubstr("\nalice pbkdf2-sha256$1000$"));
  EXPECT_THAT(text, HasSubstr("\nbob pbkdf2-sha256$1000$"));

  auto raters = LoadRaters(path_);
  ASSERT_TRUE(raters.ok()) << raters.status();
  ASSERT_EQ(raters->size(), 2u);
  EXPECT_TRUE(SecretMatches(*alice, raters->at("alice")));
  EXPECT_TRUE(SecretMatches(*bob, raters->at("bob")));
  EXPECT_FALSE(SecretMatches(*alice, raters->at("bob"))) << "one secret per rater";

  auto again = AddRater(path_, "alice", kFast);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(), HasSubstr("already names rater 'alice'"));
  EXPECT_EQ(AddRater(path_, "al ice", kFast).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Slurp(path_), text) << "refusals leave the file as it was";
}

TEST_F(RatersFileTest, AddRaterAppendsToAHandWrittenFile) {
  std::ofstream(path_) << "# our raters";  // no final newline
  auto carol = AddRater(path_, "carol", kFast);
  ASSERT_TRUE(carol.ok()) << carol.status();
  EXPECT_THAT(Slurp(path_), MatchesRegex("# our raters\ncarol pbkdf2-sha256\\$[^\n]*\n"));
}

TEST_F(RatersFileTest, APlaintextTokenLineIsRefusedWithFileAndLine) {
  auto plain = Load("# raters\nalice tok-1\n");
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plain.status().message(), HasSubstr("raters:2: rater 'alice' has a plaintext token"));
  EXPECT_THAT(plain.status().message(),
              HasSubstr("bpo annotator add-rater --raters " + path_ + " alice"));
  EXPECT_THAT(plain.status().message(), Not(HasSubstr("tok-1")));
  EXPECT_EQ(AddRater(path_, "bob", kFast).status().code(), absl::StatusCode::kInvalidArgument)
      << "add-rater refuses the old format too";
}

TEST_F(RatersFileTest, MalformedLinesAreRefusedWithFileAndLine) {
  auto hash = HashSecret("s", kFast);
  ASSERT_TRUE(hash.ok());
  const std::string good = FormatSecretHash(*hash);
  auto ok = Load("# raters\n\n  alice\t" + good + "  \nbob " + good + "\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 2u);
  EXPECT_THAT(Load("alice " + good + "\ncarol\n").status().message(),
              HasSubstr("raters:2: expected 'name pbkdf2-sha256$...', got 1 fields"));
  EXPECT_THAT(Load("al/ice " + good + "\n").status().message(), HasSubstr("rater name 'al/ice'"));
  EXPECT_THAT(Load("a " + good + "\na " + good + "\n").status().message(),
              HasSubstr("raters:2: rater 'a' appears twice"));
  EXPECT_THAT(Load("a bcrypt$12$xyz\n").status().message(),
              HasSubstr("raters:1: rater 'a': expected a hash"));
  EXPECT_THAT(Load("# nobody\n").status().message(), HasSubstr("names no rater"));
  EXPECT_EQ(LoadRaters((dir_ / "absent").string()).status().code(), absl::StatusCode::kNotFound);
}

TEST(LoginLimiterTest, LocksOutForTheWindowAfterTheLastAllowedFailure) {
  LoginLimits limits;
  limits.rater_failures_max = 2;
  limits.address_failures_max = 3;
  limits.window = absl::Minutes(10);
  limits.attempts_per_second_max = 100;
  LoginLimiter limiter(limits);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(limiter.Admit("alice", true, "10.0.0.1", t0), absl::ZeroDuration());
  EXPECT_FALSE(limiter.Failed("alice", true, "10.0.0.1", t0));
  EXPECT_TRUE(limiter.Failed("alice", true, "10.0.0.2", t0 + absl::Minutes(1)));
  EXPECT_EQ(limiter.Admit("alice", true, "10.0.0.3", t0 + absl::Minutes(2)), absl::Minutes(9));
  EXPECT_EQ(limiter.Admit("bob", true, "10.0.0.1", t0 + absl::Minutes(2)), absl::ZeroDuration());
  EXPECT_EQ(limiter.Admit("alice", true, "10.0.0.3", t0 + absl::Minutes(11)), absl::ZeroDuration());
  // Unknown names are not tracked, but their failures count for the address.
  for (int i = 0; i < 3; ++i) limiter.Failed("nobody", false, "10.0.0.9", t0);
  EXPECT_EQ(limiter.Admit("nobody", false, "10.0.0.9", t0), absl::Minutes(10));
  EXPECT_EQ(limiter.Admit("nobody", false, "10.0.0.8", t0), absl::ZeroDuration());
  EXPECT_FALSE(ValidateLoginLimits(LoginLimits{0, 1, absl::Minutes(1), 1}).ok());
  EXPECT_TRUE(ValidateLoginLimits(LoginLimits{}).ok());
}

}  // namespace
}  // namespace bpo::annotator
