// Integration: a real Prometheus server (Debian's `prometheus`) scrapes this
// process's /metrics over loopback, in plain HTTP and over HTTPS with a client
// certificate (what every bpo process serves by default); the test reads the
// series back through Prometheus's HTTP query API.
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/process_metrics.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_client.h"
#include "tests/testing/pki.h"
#include "tests/testing/subprocess.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;

class PrometheusScrapeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prometheus_ = testing::FindProgram("prometheus");
    ASSERT_FALSE(prometheus_.empty())
        << "the prometheus server is not installed: run scripts/setup-deps";
    dir_ = fs::temp_directory_path() / absl::StrCat("bpo_prom_", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    server_process_.reset();
    if (HasFailure() && fs::exists(dir_ / "prometheus.log")) {
      std::ifstream log(dir_ / "prometheus.log");
      std::cerr << "prometheus.log:\n" << log.rdbuf();
    }
    fs::remove_all(dir_);
  }

  // Runs an instant query; returns the "result" array (empty until scraped).
  nlohmann::json Query(const std::string& promql) {
    auto got = testing::HttpGet("127.0.0.1", web_port_,
                                "/api/v1/query?query=" + testing::UrlEncode(promql));
    if (!got.ok() || got->status != 200) return nlohmann::json::array();
    auto body = nlohmann::json::parse(got->body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || body["status"] != "success") return nlohmann::json::array();
    return body["data"]["result"];
  }

  // Starts Prometheus on `config` (prometheus.yml's text).
  void StartPrometheus(const std::string& config) {
    std::ofstream(dir_ / "prometheus.yml") << config;
    auto process = testing::Subprocess::Start(
        {prometheus_, absl::StrCat("--config.file=", (dir_ / "prometheus.yml").string()),
         absl::StrCat("--storage.tsdb.path=", (dir_ / "data").string()),
         "--web.listen-address=127.0.0.1:0", "--log.level=warn"},
        (dir_ / "prometheus.log").string());
    ASSERT_TRUE(process.ok()) << process.status();
    // It does not say which port it got: ask /proc.
    absl::StatusOr<int> port = testing::ListeningPort(process->pid());
    ASSERT_TRUE(port.ok()) << port.status();
    web_port_ = *port;
    server_process_.emplace(std::move(*process));
  }

  // Polls until the query returns exactly one sample equal to `want`.
  ::testing::AssertionResult WaitForValue(const std::string& promql, double want,
                                          absl::Duration timeout = absl::Seconds(90)) {
    const absl::Time deadline = absl::Now() + timeout;
    std::string last = "no result";
    while (absl::Now() < deadline) {
      nlohmann::json result = Query(promql);
      if (result.size() == 1) {
        const double got = std::stod(result[0]["value"][1].get<std::string>());
        if (got == want) return ::testing::AssertionSuccess();
        last = result.dump();
      }
      if (server_process_ && !server_process_->Running()) {
        return ::testing::AssertionFailure() << "prometheus exited";
      }
      absl::SleepFor(absl::Milliseconds(250));
    }
    return ::testing::AssertionFailure()
           << promql << " never equalled " << want << "; last: " << last;
  }

  std::string prometheus_;
  fs::path dir_;
  int web_port_ = 0;
  std::optional<testing::Subprocess> server_process_;
};

TEST_F(PrometheusScrapeTest, RealServerScrapesOurSeries) {
  metrics::Registry registry;
  registry.AddCollector(metrics::MakeProcessCollector("scrape-test"));
  auto* pairs = registry.AddCounter("bpo_test_pairs_total", "Pairs by state.", {"state"}).value();
  auto* step = registry.AddGauge("bpo_test_learner_step", "Learner step.").value();
  auto* latency =
      registry.AddHistogram("bpo_test_rpc_seconds", "Latency.", {0.1, 1}, {"method"}).value();
  pairs->Add({{"state", "annotated"}}).Increment(7);
  pairs->Add({{"state", "consumed"}}).Increment(3);
  metrics::Gauge& step_gauge = step->Add({});
  step_gauge.Set(42);
  metrics::Histogram& h = latency->Add({{"method", "FetchBatch"}});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);

  auto server = HttpServer::Start({"127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  ServeMetrics(&registry, server->get());

  StartPrometheus(
      absl::StrCat("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                   "scrape_configs:\n  - job_name: bpo\n    scrape_interval: 1s\n"
                   "    static_configs:\n      - targets: ['",
                   (*server)->address(), "']\n"));

  EXPECT_TRUE(WaitForValue("up{job=\"bpo\"}", 1));
  EXPECT_TRUE(WaitForValue("bpo_test_pairs_total{job=\"bpo\",state=\"annotated\"}", 7));
  EXPECT_TRUE(WaitForValue("bpo_test_pairs_total{job=\"bpo\",state=\"consumed\"}", 3));
  EXPECT_TRUE(WaitForValue("bpo_test_learner_step{job=\"bpo\"}", 42));
  EXPECT_TRUE(WaitForValue("bpo_test_rpc_seconds_bucket{job=\"bpo\",le=\"1\"}", 2));
  EXPECT_TRUE(WaitForValue("bpo_test_rpc_seconds_count{job=\"bpo\"}", 3));
  EXPECT_TRUE(WaitForValue("bpo_build_info{job=\"bpo\",component=\"scrape-test\"}", 1));
  EXPECT_TRUE(WaitForValue("process_resident_memory_bytes{job=\"bpo\"} > bool 1000000", 1));

  // A later value arrives with a later scrape.
  step_gauge.Set(43);
  EXPECT_TRUE(WaitForValue("bpo_test_learner_step{job=\"bpo\"}", 43));
}

TEST_F(PrometheusScrapeTest, ScrapesOverHttpsWithAClientCertificateAndOnlyWithOne) {
  metrics::Registry registry;
  auto* step = registry.AddGauge("bpo_test_learner_step", "Learner step.").value();
  step->Add({}).Set(7);
  auto pki = testing::TestPki::Create((dir_ / "pki").string());
  ASSERT_TRUE(pki.ok()) << pki.status();
  auto served = pki->Transport(Role::kActor, "actor-0");
  ASSERT_TRUE(served.ok()) << served.status();
  ASSERT_TRUE(pki->Transport(Role::kObserver, "prometheus").ok());
  auto options = MetricsServerOptions("127.0.0.1:0", *served);
  ASSERT_TRUE(options.ok()) << options.status();
  ASSERT_TRUE(options->tls.has_value() && options->tls->require_client_cert);
  auto server = HttpServer::Start(*options);
  ASSERT_TRUE(server.ok()) << server.status();
  ServeMetrics(&registry, server->get());
  EXPECT_EQ((*server)->Url("/metrics"), absl::StrCat("https://", (*server)->address(), "/metrics"));

  const std::string pki_dir = (dir_ / "pki").string();
  // Job "mtls" presents the prometheus certificate; job "anonymous" trusts
  // the CA but has no certificate, so its scrapes fail.
  StartPrometheus(absl::StrCat(
      "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      "scrape_configs:\n"
      "  - job_name: mtls\n    scrape_interval: 1s\n    scheme: https\n"
      "    tls_config:\n      ca_file: ",
      pki_dir, "/ca.pem\n      cert_file: ", pki_dir, "/prometheus.pem\n      key_file: ", pki_dir,
      "/prometheus.key\n      server_name: bpo\n"
      "    static_configs:\n      - targets: ['",
      (*server)->address(),
      "']\n"
      "  - job_name: anonymous\n    scrape_interval: 1s\n    scheme: https\n"
      "    tls_config:\n      ca_file: ",
      pki_dir, "/ca.pem\n      server_name: bpo\n    static_configs:\n      - targets: ['",
      (*server)->address(), "']\n"));
  EXPECT_TRUE(WaitForValue("up{job=\"mtls\"}", 1));
  EXPECT_TRUE(WaitForValue("bpo_test_learner_step{job=\"mtls\"}", 7));
  EXPECT_TRUE(WaitForValue("up{job=\"anonymous\"}", 0));
  // Plain HTTP to the HTTPS port gets nothing either.
  auto plain = testing::HttpGet("127.0.0.1", (*server)->port(), "/metrics", absl::Seconds(3));
  EXPECT_TRUE(!plain.ok() || plain->status != 200);
}

}  // namespace
}  // namespace bpo
