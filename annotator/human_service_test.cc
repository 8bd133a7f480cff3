#include "annotator/human_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "annotator/human_tokens.h"
#include "coordinator/testing/in_process_coordinator.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_client.h"

namespace bpo::annotator {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using coordinator::PairState;
using coordinator::testing::InProcessCoordinator;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

// Hashes for tests: the fewest rounds allowed, so a sign-in costs microseconds.
SecretHash TestHash(const std::string& secret) {
  auto hash = HashSecret(secret, kSecretHashIterationsMin);
  EXPECT_TRUE(hash.ok()) << hash.status();
  return hash.ok() ? *hash : SecretHash{};
}

class HumanServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    config_ = coordinator::testing::SmallRunConfig();
    options_.raters = {{"alice", TestHash("sec-alice")}, {"bob", TestHash("sec-bob")}};
    // Plain HTTP on loopback: the test client sends the cookie back either way.
    options_.secure_cookies = false;
    // The login limits run on a clock the tests advance.
    options_.clock = [this] { return absl::FromUnixNanos(clock_ns_.load()); };
    options_.seed = 42;
    options_.rpc_deadline = absl::Seconds(5);
    options_.connect_timeout = absl::Seconds(5);
    options_.keepalive_tick = absl::Milliseconds(100);
  }

  // The coordinator with phase 0's four pairs sampled, and the service.
  void StartAll() {
    auto c = InProcessCoordinator::Start(dir_.string(), config_);
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = std::move(*c);
    ASSERT_TRUE(coordinator_->SamplePhase(0).ok());
    options_.coordinator_address = coordinator_->address();
    options_.transport = TransportSecurity::Plaintext();
    auto s = HumanAnnotationService::Start(options_, &registry_);
    ASSERT_TRUE(s.ok()) << s.status();
    service_ = std::move(*s);
  }

  void Advance(absl::Duration d) { clock_ns_ += absl::ToInt64Nanoseconds(d); }

  // Sends a request as the page does (X-Bpo-Request: 1, and the session
  // cookie when `session` is given).
  bpo::testing::HttpResult Send(const std::string& method, const std::string& target,
                                const std::string& body, const std::string& session = "",
                                bool marker = true) {
    std::map<std::string, std::string> headers;
    if (marker) headers["X-Bpo-Request"] = "1";
    if (!session.empty()) headers["Cookie"] = "theme=dark; bpo_session=" + session;
    auto r = bpo::testing::HttpRequest("127.0.0.1", service_->port(), method, target, body,
                                       absl::Seconds(10), headers);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : bpo::testing::HttpResult{};
  }

  // Sends a request and returns the JSON answer; expects `status`.
  json Call(const std::string& method, const std::string& target, const std::string& body,
            int status, const std::string& session = "") {
    const auto r = Send(method, target, body, session);
    EXPECT_EQ(r.status, status) << method << " " << target << " -> " << r.body;
    EXPECT_THAT(r.headers.count("content-type") ? r.headers.at("content-type") : "",
                HasSubstr("application/json"));
    json out = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(out.is_discarded()) << r.body;
    return out;
  }

  static std::string LoginBody(const std::string& rater, const std::string& secret) {
    return json{{"rater", rater}, {"secret", secret}}.dump();
  }

  // Signs in and returns the session from the Set-Cookie header.
  std::string Login(const std::string& rater, const std::string& secret) {
    const auto r = Send("POST", "/api/login", LoginBody(rater, secret));
    EXPECT_EQ(r.status, 200) << r.body;
    json out = json::parse(r.body, nullptr, false);
    EXPECT_EQ(out.value("rater", ""), rater);
    EXPECT_FALSE(out.contains("session")) << "the session travels only in the cookie";
    const std::string cookie = r.headers.count("set-cookie") ? r.headers.at("set-cookie") : "";
    EXPECT_TRUE(absl::StartsWith(cookie, "bpo_session=")) << cookie;
    return cookie.substr(cookie.find('=') + 1, cookie.find(';') - cookie.find('=') - 1);
  }

  json Next(const std::string& session) { return Call("GET", "/api/next", "", 200, session); }

  json Label(const std::string& session, const std::string& pair_id, const std::string& choice,
             int status = 200) {
    return Call("POST", "/api/label", json{{"pair_id", pair_id}, {"choice", choice}}.dump(), status,
                session);
  }

  // The side ("left" or "right") on which `pair` shows response A or B.
  static std::string SideOf(const json& pair, bool a) {
    const std::string id = pair["pair_id"];
    const std::string text = a ? InProcessCoordinator::TextA(id) : InProcessCoordinator::TextB(id);
    EXPECT_TRUE(pair["left"] == text || pair["right"] == text) << pair.dump();
    return pair["left"] == text ? "left" : "right";
  }

  // Every label of phase 0 (steps 0 and 1) by pair_id.
  std::map<std::string, bpo::v1::Label> LabelsOfPhase0() {
    std::map<std::string, bpo::v1::Label> out;
    for (int64_t step = 0; step < 2; ++step) {
      auto batch = coordinator_->FetchAndCommit(step);
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok()) continue;
      for (const auto& p : batch->pairs()) out[p.pair().pair_id()] = p.label();
    }
    return out;
  }

  std::string Metrics() {
    auto r = bpo::testing::HttpGet("127.0.0.1", service_->port(), "/metrics");
    EXPECT_TRUE(r.ok() && r->status == 200);
    return r.ok() ? r->body : "";
  }

  fs::path dir_;
  bpo::v1::RunConfig config_;
  HumanOptions options_;
  metrics::Registry registry_;
  std::unique_ptr<InProcessCoordinator> coordinator_;
  std::unique_ptr<HumanAnnotationService> service_;
  std::atomic<int64_t> clock_ns_{absl::ToUnixNanos(absl::FromUnixSeconds(1700000000))};
};

TEST_F(HumanServiceTest, LabelsReachTheStoreOnTheSideTheRaterChose) {
  StartAll();
  const std::string session = Login("alice", "sec-alice");
  std::map<std::string, bpo::v1::Choice> expected;
  int swapped = 0;
  for (int i = 0; i < 4; ++i) {
    json next = Next(session);
    ASSERT_TRUE(next["pair"].is_object()) << next.dump();
    const json pair = next["pair"];
    EXPECT_THAT(pair["prompt"].get<std::string>(), HasSubstr("prompt number"));
    EXPECT_EQ(Next(session)["pair"], pair) << "a reload shows the same pair the same way";
    swapped += SideOf(pair, /*a=*/true) == "right";
    if (i == 0) absl::SleepFor(absl::Milliseconds(50));
    const std::string choice = i % 2 == 0 ? "left" : "right";
    const bool chose_a = SideOf(pair, true) == choice;
    expected[pair["pair_id"]] = chose_a ? bpo::v1::CHOICE_A : bpo::v1::CHOICE_B;
    json out = Label(session, pair["pair_id"], choice);
    EXPECT_EQ(out["outcome"], "ACCEPTED");
    EXPECT_EQ(out["labelled"], i + 1);
  }
  EXPECT_GT(swapped, 0) << "the order is random per pair";
  EXPECT_LT(swapped, 4) << "the order is random per pair";
  json none = Next(session);
  EXPECT_TRUE(none["pair"].is_null());
  EXPECT_GE(none["retry_after_ms"].get<int64_t>(), 1000);

  auto status = coordinator_->store()->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->pairs_annotated(), 4);
  int humans = 0;
  for (const auto& w : status->workers()) {
    if (w.info().name() != "human:alice") continue;
    ++humans;
    EXPECT_EQ(w.info().kind(), bpo::v1::WORKER_KIND_ANNOTATOR);
    EXPECT_EQ(w.info().annotator_kind(), bpo::v1::ANNOTATOR_KIND_HUMAN);
  }
  EXPECT_EQ(humans, 1);

  const auto labels = LabelsOfPhase0();
  ASSERT_EQ(labels.size(), 4u);
  int64_t a = 0, slow = 0;
  for (const auto& [id, label] : labels) {
    EXPECT_EQ(label.provenance(), "human:alice");
    EXPECT_EQ(label.choice(), expected.at(id)) << id;
    a += label.choice() == bpo::v1::CHOICE_A;
    slow += label.time_taken().seconds() * 1000 + label.time_taken().nanos() / 1000000 >= 50;
  }
  EXPECT_GE(slow, 1) << "time_taken runs from showing the pair to the click";

  json stats = Call("GET", "/api/stats", "", 200, session);
  EXPECT_EQ(stats["labelled"], 4);
  EXPECT_EQ(stats["by_choice"]["a"], a);
  EXPECT_EQ(stats["by_choice"]["b"], 4 - a);
  EXPECT_EQ(stats["run"]["pairs_total"], 8);
  const std::string text = Metrics();
  EXPECT_THAT(text, HasSubstr(absl::StrCat("bpo_human_labels_total{choice=\"a\"} ", a, "\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("bpo_human_labels_total{choice=\"b\"} ", 4 - a, "\n")));
  EXPECT_THAT(text, HasSubstr("bpo_human_label_seconds_count 4\n"));
  EXPECT_THAT(text, HasSubstr("bpo_human_raters_active 1\n"));
}

TEST_F(HumanServiceTest, BadRequestsAreRefusedWithClearErrors) {
  StartAll();
  EXPECT_EQ(Call("POST", "/api/login", LoginBody("alice", "sec-bob"), 401)["error"],
            "unknown rater or wrong secret");
  EXPECT_EQ(Call("POST", "/api/login", LoginBody("mallory", "sec-alice"), 401)["error"],
            "unknown rater or wrong secret");
  EXPECT_THAT(
      Call("POST", "/api/login", R"({"rater": "alice", "sec)", 400)["error"].get<std::string>(),
      HasSubstr("malformed JSON"));
  EXPECT_THAT(Call("POST", "/api/login", R"({"rater":"alice"})", 400)["error"].get<std::string>(),
              HasSubstr("'secret'"));
  EXPECT_THAT(Call("POST", "/api/login", R"({"rater":"alice","token":"sec-alice"})", 400)["error"]
                  .get<std::string>(),
              HasSubstr("'secret'"))
      << "the old field is gone";
  Call("POST", "/api/login", R"(["alice","sec-alice"])", 400);
  EXPECT_THAT(Call("GET", "/api/next", "", 401)["error"].get<std::string>(), HasSubstr("sign in"));
  Call("GET", "/api/next", "", 401, "0123456789abcdef");
  Call("GET", "/api/login", "", 405);
  Call("GET", "/api/nothing", "", 404);

  const std::string session = Login("alice", "sec-alice");
  const json pair = Next(session)["pair"];
  ASSERT_TRUE(pair.is_object());
  EXPECT_THAT(Label(session, pair["pair_id"], "up", 400)["error"].get<std::string>(),
              HasSubstr("left, right, tie, skip"));
  EXPECT_THAT(Label(session, "p0-999", "left", 409)["error"].get<std::string>(),
              HasSubstr("not the pair on your screen"));
  Label("not-a-session", pair["pair_id"], "left", 401);
  Call("POST", "/api/label", "choice=left", 400, session);
  auto counters = coordinator_->store()->Counters();
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ(counters->pairs[PairState::kSampled], 4) << "nothing was labelled";
  EXPECT_EQ(counters->pairs[PairState::kAnnotated], 0);

  auto page = bpo::testing::HttpGet("127.0.0.1", service_->port(), "/");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->headers["content-type"], HasSubstr("text/html"));
  EXPECT_THAT(page->headers["content-security-policy"], HasSubstr("default-src 'none'"));
  EXPECT_THAT(page->body, HasSubstr("id=\"btn-left\""));
  EXPECT_THAT(page->body, Not(HasSubstr("session=")));

  const auto out = Send("POST", "/api/logout", "", session);
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(json::parse(out.body)["signed_out"], true);
  EXPECT_THAT(out.headers.at("set-cookie"), HasSubstr("bpo_session=; Path=/; Max-Age=0"));
  Call("GET", "/api/next", "", 401, session);
}

TEST_F(HumanServiceTest, TheSessionIsAnHttpOnlySameSiteCookie) {
  options_.secure_cookies = true;
  StartAll();
  const auto r = Send("POST", "/api/login", LoginBody("alice", "sec-alice"));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string cookie = r.headers.at("set-cookie");
  EXPECT_THAT(cookie, MatchesRegex("bpo_session=[0-9a-f]{64}; Path=/; HttpOnly; "
                                   "SameSite=Strict; Secure"));
  const std::string session = cookie.substr(12, 64);
  EXPECT_THAT(r.body, Not(HasSubstr(session)));
  EXPECT_EQ(Call("GET", "/api/stats", "", 200, session)["rater"], "alice");
  EXPECT_NE(Login("alice", "sec-alice"), session) << "every sign-in draws a new session";
  EXPECT_THAT(Send("POST", "/api/logout", "", session).headers.at("set-cookie"),
              HasSubstr("; Secure"));
}

TEST_F(HumanServiceTest, ASessionInTheUrlOrTheBodyIsNotAccepted) {
  StartAll();
  const std::string session = Login("alice", "sec-alice");
  EXPECT_THAT(Call("GET", "/api/next?session=" + session, "", 401)["error"].get<std::string>(),
              HasSubstr("no session"));
  Call("GET", "/api/stats?session=" + session, "", 401);
  const json pair = Next(session)["pair"];
  ASSERT_TRUE(pair.is_object());
  Call("POST", "/api/label",
       json{{"session", session}, {"pair_id", pair["pair_id"]}, {"choice", "left"}}.dump(), 401);
  Call("POST", "/api/logout", json{{"session", session}}.dump(), 200);
  EXPECT_EQ(Label(session, pair["pair_id"], "left")["outcome"], "ACCEPTED")
      << "a logout without the cookie ends no session";
}

TEST_F(HumanServiceTest, ApiRequestsWithoutTheCsrfHeaderAreRefused) {
  StartAll();
  const auto login = Send("POST", "/api/login", LoginBody("alice", "sec-alice"), "",
                          /*marker=*/false);
  EXPECT_EQ(login.status, 403) << login.body;
  EXPECT_THAT(login.body, HasSubstr("X-Bpo-Request: 1"));
  EXPECT_EQ(login.headers.count("set-cookie"), 0u);
  const std::string session = Login("alice", "sec-alice");
  const json pair = Next(session)["pair"];
  ASSERT_TRUE(pair.is_object());
  const auto label =
      Send("POST", "/api/label", json{{"pair_id", pair["pair_id"]}, {"choice", "left"}}.dump(),
           session, /*marker=*/false);
  EXPECT_EQ(label.status, 403);
  EXPECT_EQ(Send("GET", "/api/next", "", session, false).status, 403);
  EXPECT_EQ(Send("POST", "/api/logout", "", session, false).status, 403);
  EXPECT_EQ(coordinator_->store()->Counters()->pairs[PairState::kAnnotated], 0);
  EXPECT_EQ(Call("GET", "/api/stats", "", 200, session)["rater"], "alice") << "still signed in";
}

TEST_F(HumanServiceTest, EachRaterSignsInOnlyWithTheirOwnSecret) {
  StartAll();
  Call("POST", "/api/login", LoginBody("bob", "sec-alice"), 401);
  Call("POST", "/api/login", LoginBody("carol", "sec-alice"), 401);
  const std::string alice = Login("alice", "sec-alice");
  const std::string bob = Login("bob", "sec-bob");
  EXPECT_NE(alice, bob);
  EXPECT_EQ(Call("GET", "/api/stats", "", 200, alice)["rater"], "alice");
  EXPECT_EQ(Call("GET", "/api/stats", "", 200, bob)["rater"], "bob");
}

TEST_F(HumanServiceTest, FailedSignInsLockTheRaterOutUntilTheWindowPasses) {
  StartAll();
  for (int i = 0; i < 5; ++i) {
    if (i > 0) Advance(absl::Seconds(10));
    Call("POST", "/api/login", LoginBody("alice", absl::StrCat("guess-", i)), 401);
  }
  const auto locked = Send("POST", "/api/login", LoginBody("alice", "sec-alice"));
  EXPECT_EQ(locked.status, 429) << "the right secret is refused during the lockout";
  EXPECT_EQ(locked.headers.at("retry-after"), "900");
  EXPECT_THAT(locked.body, HasSubstr("too many sign-in attempts"));
  EXPECT_EQ(locked.headers.count("set-cookie"), 0u);
  Login("bob", "sec-bob");  // another rater from the same address is not locked out

  Advance(absl::Minutes(14));
  const auto still = Send("POST", "/api/login", LoginBody("alice", "sec-alice"));
  EXPECT_EQ(still.status, 429);
  EXPECT_EQ(still.headers.at("retry-after"), "60");
  Advance(absl::Minutes(1));
  Login("alice", "sec-alice");
  const std::string text = Metrics();
  EXPECT_THAT(text, HasSubstr("bpo_human_logins_failed_total 5\n"));
  EXPECT_THAT(text, HasSubstr("bpo_human_logins_limited_total 2\n"));
}

TEST_F(HumanServiceTest, FailuresOutsideTheWindowAndBeforeASuccessAreForgotten) {
  StartAll();
  for (int i = 0; i < 4; ++i) Call("POST", "/api/login", LoginBody("alice", "guess"), 401);
  Advance(absl::Minutes(15));
  for (int i = 0; i < 4; ++i) Call("POST", "/api/login", LoginBody("alice", "guess"), 401);
  Login("alice", "sec-alice");
  Advance(absl::Seconds(1));
  for (int i = 0; i < 4; ++i) Call("POST", "/api/login", LoginBody("alice", "guess"), 401);
  Login("alice", "sec-alice");
}

TEST_F(HumanServiceTest, FailuresFromOneAddressLockItOutWhateverTheNames) {
  options_.login_limits.address_failures_max = 3;
  StartAll();
  Call("POST", "/api/login", LoginBody("mallory", "x"), 401);
  Call("POST", "/api/login", LoginBody("trent", "x"), 401);
  Call("POST", "/api/login", LoginBody("bob", "x"), 401);
  const auto locked = Send("POST", "/api/login", LoginBody("alice", "sec-alice"));
  EXPECT_EQ(locked.status, 429);
  EXPECT_EQ(locked.headers.at("retry-after"), "900");
  Advance(absl::Minutes(15));
  Login("alice", "sec-alice");
}

TEST_F(HumanServiceTest, SignInAttemptsAreCappedPerSecond) {
  options_.login_limits.attempts_per_second_max = 3;
  StartAll();
  Call("POST", "/api/login", LoginBody("bob", "x"), 401);
  Call("POST", "/api/login", LoginBody("carol", "x"), 401);
  Login("bob", "sec-bob");
  const auto capped = Send("POST", "/api/login", LoginBody("alice", "sec-alice"));
  EXPECT_EQ(capped.status, 429);
  EXPECT_EQ(capped.headers.at("retry-after"), "1");
  Advance(absl::Seconds(1));
  Login("alice", "sec-alice");
}

TEST_F(HumanServiceTest, TwoRatersLabelEveryPairAndTheirAgreementIsReported) {
  config_.mutable_annotation()->set_raters_per_pair(2);
  StartAll();
  const std::string alice = Login("alice", "sec-alice");
  const std::string bob = Login("bob", "sec-bob");
  std::map<std::string, std::set<std::string>> seen;
  for (const auto& [name, session] : {std::pair{"alice", alice}, std::pair{"bob", bob}}) {
    for (int i = 0;; ++i) {
      const json pair = Next(session)["pair"];
      if (pair.is_null()) break;
      ASSERT_LT(i, 4) << name << " is offered more pairs than there are";
      EXPECT_TRUE(seen[name].insert(pair["pair_id"]).second) << "never one pair twice to a rater";
      // Bob prefers B on his first pair and agrees with alice on the rest.
      const bool a = !(std::string(name) == "bob" && i == 0);
      EXPECT_EQ(Label(session, pair["pair_id"], SideOf(pair, a))["outcome"], "ACCEPTED");
    }
  }
  EXPECT_EQ(seen["alice"].size(), 4u);
  EXPECT_EQ(seen["alice"], seen["bob"]);
  auto status = coordinator_->store()->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->rater_pairs_compared(), 4);
  EXPECT_DOUBLE_EQ(status->rater_agreement(), 0.75);
  EXPECT_EQ(status->pairs_annotated(), 3);
  EXPECT_EQ(status->pairs_dropped(), 1) << "a disagreement is a tie, dropped";
  std::set<std::string> worker_ids;
  for (const auto& w : status->workers()) {
    if (w.info().annotator_kind() == bpo::v1::ANNOTATOR_KIND_HUMAN)
      worker_ids.insert(w.worker_id());
  }
  EXPECT_EQ(worker_ids.size(), 2u) << "one coordinator worker per rater";
  json stats = Call("GET", "/api/stats", "", 200, bob);
  EXPECT_EQ(stats["run"]["rater_pairs_compared"], 4);
}

TEST_F(HumanServiceTest, ASkippedPairGoesToAnotherRater) {
  StartAll();
  const std::string alice = Login("alice", "sec-alice");
  const json skipped = Next(alice)["pair"];
  ASSERT_TRUE(skipped.is_object());
  json out = Label(alice, skipped["pair_id"], "skip");
  EXPECT_EQ(out["outcome"], "ACCEPTED");
  EXPECT_EQ(out["labelled"], 0) << "a skip is not a label";
  for (int i = 0; i < 3; ++i) {
    const json pair = Next(alice)["pair"];
    ASSERT_TRUE(pair.is_object());
    EXPECT_NE(pair["pair_id"], skipped["pair_id"]);
    Label(alice, pair["pair_id"], "left");
  }
  EXPECT_TRUE(Next(alice)["pair"].is_null()) << "the skipped pair is not offered back";
  const std::string bob = Login("bob", "sec-bob");
  const json again = Next(bob)["pair"];
  ASSERT_TRUE(again.is_object());
  EXPECT_EQ(again["pair_id"], skipped["pair_id"]);
  Label(bob, again["pair_id"], "tie");
  // annotation.ties: skip drops the tie and queues a replacement prompt.
  EXPECT_EQ(coordinator_->store()->Counters()->pairs[PairState::kAnnotated], 3);
  EXPECT_EQ(coordinator_->store()->Counters()->pairs[PairState::kDropped], 1);
  json stats = Call("GET", "/api/stats", "", 200, alice);
  EXPECT_EQ(stats["by_choice"]["skip"], 1);
  EXPECT_EQ(stats["labelled"], 3);
  EXPECT_THAT(Metrics(), HasSubstr("bpo_human_labels_total{choice=\"tie\"} 1\n"));
}

TEST_F(HumanServiceTest, TheLeaseIsKeptWhileThePageIsOpenAndLapsesWhenItCloses) {
  config_.mutable_annotation()->set_lease_seconds(2);
  options_.lease_duration = absl::Seconds(2);
  options_.idle_timeout = absl::Seconds(3);
  StartAll();
  const std::string alice = Login("alice", "sec-alice");
  const json held = Next(alice)["pair"];
  ASSERT_TRUE(held.is_object());
  // The page polls /api/stats while open: the service extends the 2 s lease.
  for (int i = 0; i < 10; ++i) {
    absl::SleepFor(absl::Milliseconds(500));
    Call("GET", "/api/stats", "", 200, alice);
  }
  EXPECT_EQ(*coordinator_->store()->ExpireLeases(), 0);
  EXPECT_EQ(coordinator_->store()->Counters()->label_leases_active, 1);
  EXPECT_EQ(Label(alice, held["pair_id"], "left")["outcome"], "ACCEPTED");

  // The page closes: nothing extends the lease and the pair goes to bob.
  const json lapsed = Next(alice)["pair"];
  ASSERT_TRUE(lapsed.is_object());
  absl::SleepFor(absl::Seconds(7));
  const std::string bob = Login("bob", "sec-bob");
  EXPECT_EQ(Next(bob)["pair"]["pair_id"], lapsed["pair_id"]);
  EXPECT_GE(coordinator_->store()->Counters()->leases_expired, 1);
  EXPECT_THAT(Label(alice, lapsed["pair_id"], "left", 409)["error"].get<std::string>(),
              HasSubstr("not leased to worker"));
  EXPECT_THAT(Metrics(), HasSubstr("bpo_human_labels_refused_total 1\n"));
  // Alice moves on to the next pair.
  const json fresh = Next(alice)["pair"];
  ASSERT_TRUE(fresh.is_object());
  EXPECT_NE(fresh["pair_id"], lapsed["pair_id"]);
}

TEST_F(HumanServiceTest, StartRefusesBadOptionsAndAnAbsentCoordinator) {
  options_.coordinator_address = "127.0.0.1:1";
  options_.connect_timeout = absl::Milliseconds(300);
  auto down = HumanAnnotationService::Start(options_);
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(down.status().message(), HasSubstr("coordinator"));
  const auto raters = options_.raters;
  options_.raters.clear();
  EXPECT_THAT(HumanAnnotationService::Start(options_).status().message(), HasSubstr("add-rater"));
  options_.raters = {{"bad name", TestHash("x")}};
  EXPECT_EQ(HumanAnnotationService::Start(options_).status().code(),
            absl::StatusCode::kInvalidArgument);
  options_.raters = {{"alice", SecretHash{}}};
  EXPECT_EQ(HumanAnnotationService::Start(options_).status().code(),
            absl::StatusCode::kInvalidArgument);
  options_.raters = raters;
  options_.login_limits.rater_failures_max = 0;
  EXPECT_THAT(HumanAnnotationService::Start(options_).status().message(),
              HasSubstr("rater_failures_max (0)"));
}

TEST(SideTest, MapsTheShownSideBackToTheResponse) {
  EXPECT_EQ(ToChoice(Side::kLeft, false), bpo::v1::CHOICE_A);
  EXPECT_EQ(ToChoice(Side::kLeft, true), bpo::v1::CHOICE_B);
  EXPECT_EQ(ToChoice(Side::kRight, false), bpo::v1::CHOICE_B);
  EXPECT_EQ(ToChoice(Side::kRight, true), bpo::v1::CHOICE_A);
  EXPECT_EQ(ToChoice(Side::kTie, true), bpo::v1::CHOICE_TIE);
  EXPECT_EQ(ToChoice(Side::kSkip, false), bpo::v1::CHOICE_SKIP);
  EXPECT_EQ(ParseSide("middle").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bpo::annotator
