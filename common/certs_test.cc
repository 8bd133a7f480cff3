#include "common/certs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/files.h"
#include "common/http_server.h"
#include "common/identity.h"
#include "common/transport.h"
#include "tests/testing/https_client.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path FreshDir() {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ::testing::UnitTest::GetInstance()->current_test_info()->name();
  fs::remove_all(dir);
  return dir;
}

TEST(IdentityTest, ParsesRoleAndNameAndRefusesTheRest) {
  auto id = ParseIdentity("actor:actor-0");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->role, Role::kActor);
  EXPECT_EQ(id->name, "actor-0");
  EXPECT_EQ(id->ToString(), "actor:actor-0");
  EXPECT_THAT(ParseIdentity("root:x").status().message(), HasSubstr("unknown role 'root'"));
  EXPECT_THAT(ParseIdentity("actor").status().message(), HasSubstr("expected <role>:<name>"));
  EXPECT_FALSE(ParseIdentity("actor:../x").ok());
  EXPECT_FALSE(ParseIdentity("plaintext:x").ok());  // never a certificate's role
  EXPECT_FALSE(ParseIdentity(absl::StrCat("actor:", std::string(49, 'a'))).ok());
  EXPECT_TRUE(RequireRole({Role::kLearner, "l"}, {Role::kLearner}, "x").ok());
  EXPECT_EQ(RequireRole({Role::kActor, "a"}, {Role::kLearner}, "LearnerFeed.CommitStep"),
            absl::PermissionDeniedError("LearnerFeed.CommitStep is only for learner identities; "
                                        "the caller is actor:a"));
  EXPECT_TRUE(RequireRole({Role::kPlaintext, "p"}, {Role::kLearner}, "x").ok());
}

TEST(CertsTest, IssuesCertificatesThatCarryTheIdentityAndChainToTheCa) {
  const fs::path dir = FreshDir();
  ASSERT_TRUE(CreateCertificateAuthority(dir.string(), "run-1").ok());
  EXPECT_EQ(CreateCertificateAuthority(dir.string(), "run-1").code(),
            absl::StatusCode::kAlreadyExists);
  struct stat st {};
  ASSERT_EQ(stat((dir / "ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(IssueCertificate(dir.string(), {Role::kLearner, "learner-0"},
                               {.hosts = {"node7.cluster", "10.1.2.3"}})
                  .ok());
  const std::string ca = *ReadWholeFile((dir / "ca.pem").string());
  const std::string cert = *ReadWholeFile((dir / "learner-0.pem").string());
  const std::string key = *ReadWholeFile((dir / "learner-0.key").string());
  EXPECT_TRUE(CheckCertificate(ca, cert, key).ok());
  auto id = CertificateIdentity(cert);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->ToString(), "learner:learner-0");
  EXPECT_EQ(cert.find("PRIVATE"), std::string::npos);

  // Another CA's certificate, or another certificate's key, is refused.
  const fs::path other = dir / "other";
  ASSERT_TRUE(CreateCertificateAuthority(other.string(), "run-2").ok());
  ASSERT_TRUE(IssueCertificate(other.string(), {Role::kActor, "actor-0"}).ok());
  const std::string foreign = *ReadWholeFile((other / "actor-0.pem").string());
  EXPECT_THAT(CheckCertificate(ca, foreign, "").message(), HasSubstr("not signed by the CA"));
  EXPECT_THAT(
      CheckCertificate(ca, cert, *ReadWholeFile((other / "actor-0.key").string())).message(),
      HasSubstr("not the certificate's private key"));
  EXPECT_FALSE(IssueCertificate(dir.string(), {Role::kActor, "a/b"}).ok());
  EXPECT_FALSE(IssueCertificate(dir.string(), {Role::kActor, "a"}, {.hosts = {"bad host"}}).ok());
  EXPECT_EQ(IssueCertificate((dir / "none").string(), {Role::kActor, "a"}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CertsTest, EnsureCertificatesIssuesOnlyWhatIsMissing) {
  const fs::path dir = FreshDir();
  const std::vector<Identity> ids = {{Role::kCoordinator, "coordinator"},
                                     {Role::kActor, "actor-0"}};
  ASSERT_TRUE(EnsureCertificates(dir.string(), "r", ids).ok());
  const std::string first = *ReadWholeFile((dir / "actor-0.pem").string());
  ASSERT_TRUE(EnsureCertificates(dir.string(), "r", ids).ok());
  EXPECT_EQ(*ReadWholeFile((dir / "actor-0.pem").string()), first);
  // A certificate of another identity under the name is replaced.
  ASSERT_TRUE(IssueCertificate(dir.string(), {Role::kLearner, "actor-0"}).ok());
  ASSERT_TRUE(EnsureCertificates(dir.string(), "r", ids).ok());
  EXPECT_EQ(CertificateIdentity(*ReadWholeFile((dir / "actor-0.pem").string()))->ToString(),
            "actor:actor-0");
}

TEST(CertsTest, BearerTokensAreStoredOnlyAsTheirHash) {
  const fs::path dir = FreshDir();
  fs::create_directories(dir);
  const std::string file = (dir / "tokens").string();
  auto token = CreateBearerToken(file, {Role::kAnnotator, "human-service"});
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->size(), 64u);
  const std::string text = *ReadWholeFile(file);
  EXPECT_EQ(text.find(*token), std::string::npos);
  EXPECT_EQ(CreateBearerToken(file, {Role::kAnnotator, "human-service"}).status().code(),
            absl::StatusCode::kAlreadyExists);
  auto tokens = LoadTokens(file);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ(tokens->at(Sha256Hex(*token)).ToString(), "annotator:human-service");
  ASSERT_TRUE(WriteFileAtomically(file, "annotator:x secret-in-clear\n").ok());
  EXPECT_THAT(LoadTokens(file).status().message(), HasSubstr(":1: the token must be stored as"));
}

TEST(TransportTest, LoadsTheProcessCertificateOrSaysHowToMakeOne) {
  const fs::path dir = FreshDir();
  bpo::v1::RunConfig config = DefaultRunConfig().config;
  config.set_output_dir(dir.string());
  config.set_run_id("r");
  auto missing = LoadTransport(config, "actor-0");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr("bpo certs issue"));
  EXPECT_THAT(missing.status().message(), HasSubstr((dir / "r" / "certs").string()));
  ASSERT_TRUE(
      EnsureCertificates((dir / "r" / "certs").string(), "r", {{Role::kActor, "actor-0"}}).ok());
  auto t = LoadTransport(config, "actor-0");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->identity->ToString(), "actor:actor-0");
  EXPECT_EQ(t->Describe(), "mTLS as actor:actor-0");
  config.mutable_security()->set_plaintext(true);
  EXPECT_TRUE(LoadTransport(config, "actor-0")->plaintext);
}

TEST(HttpsServerTest, ServesOnlyClientsWithACertificateOfTheCa) {
  const fs::path dir = FreshDir();
  const std::string d = dir.string();
  ASSERT_TRUE(
      EnsureCertificates(d, "r", {{Role::kActor, "actor-0"}, {Role::kObserver, "prometheus"}})
          .ok());
  bpo::v1::RunConfig config = DefaultRunConfig().config;
  config.mutable_security()->set_dir(d);
  auto server_side = LoadTransport(config, "actor-0");
  auto scraper = LoadTransport(config, "prometheus");
  ASSERT_TRUE(server_side.ok() && scraper.ok());
  auto options = MetricsServerOptions("127.0.0.1:0", *server_side);
  ASSERT_TRUE(options.ok()) << options.status();
  auto server = HttpServer::Start(*options);
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->Handle("/metrics", [](const HttpRequest&) {
    return HttpResponse{200, "text/plain", "ok\n", {}};
  });
  auto got = testing::HttpsGet("127.0.0.1", (*server)->port(), "/metrics", *scraper);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "ok\n");
  // Without a client certificate the handshake fails.
  TransportSecurity anonymous;
  anonymous.ca_pem = scraper->ca_pem;
  EXPECT_FALSE(testing::HttpsGet("127.0.0.1", (*server)->port(), "/metrics", anonymous).ok());
  // The server's certificate is checked too: a name it does not carry fails.
  EXPECT_FALSE(
      testing::HttpsGet("127.0.0.1", (*server)->port(), "/metrics", *scraper, "coordinator.bpo")
          .ok());
  // Plaintext metrics only on loopback.
  EXPECT_EQ(MetricsServerOptions("0.0.0.0:0", TransportSecurity::Plaintext()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HttpsServerTest, OptionalClientCertificatesLetBrowsersInAndKeepMetricsForTheRun) {
  const fs::path dir = FreshDir();
  const std::string d = dir.string();
  ASSERT_TRUE(
      EnsureCertificates(d, "r", {{Role::kAnnotator, "human"}, {Role::kObserver, "prometheus"}})
          .ok());
  bpo::v1::RunConfig config = DefaultRunConfig().config;
  config.mutable_security()->set_dir(d);
  auto page = LoadTransport(config, "human");
  auto scraper = LoadTransport(config, "prometheus");
  ASSERT_TRUE(page.ok() && scraper.ok());
  HttpServerOptions options;
  options.tls = HttpTls{page->cert_pem, page->key_pem, page->ca_pem, false, true};
  auto server = HttpServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  metrics::Registry registry;
  ServeMetrics(&registry, server->get(), /*require_client_identity=*/true);
  (*server)->Handle("/", [](const HttpRequest& r) {
    return HttpResponse{200, "text/plain", "page for '" + r.peer_identity + "'", {}};
  });
  TransportSecurity browser;
  browser.ca_pem = scraper->ca_pem;
  auto got = testing::HttpsGet("127.0.0.1", (*server)->port(), "/", browser);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->body, "page for ''");
  got = testing::HttpsGet("127.0.0.1", (*server)->port(), "/metrics", browser);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 403);
  got = testing::HttpsGet("127.0.0.1", (*server)->port(), "/metrics", *scraper);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 200);
  got = testing::HttpsGet("127.0.0.1", (*server)->port(), "/", *scraper);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->body, "page for 'observer:prometheus'");
}

}  // namespace
}  // namespace bpo
