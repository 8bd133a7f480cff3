// The human-annotation web service (`bpo annotator --kind human`): a single
// page served over HTTP on which raters sign in and compare two responses,
// and its JSON API. Each signed-in rater is its own coordinator worker
// ("human:<rater>", kind ANNOTATOR, annotator_kind HUMAN): the service leases
// pairs for that rater from AnnotationQueue, keeps the lease alive while the
// rater's page is open, and submits the rater's choice with provenance
// "human:<rater>" and the time from showing the pair to the click.
//
// The page shows the two responses in an order drawn per pair from a seeded
// RNG; the mapping back to A/B stays on the server, so the page never sees
// which side is A.
//
// Sign-in: each rater has their own secret (human_tokens.h; the raters file
// keeps only its PBKDF2 hash). Failed sign-ins lock the rater name and the
// client address out for a while (human_login.h). A signed-in page holds
// its session only in the cookie
//   bpo_session=<64 hex digits>; Path=/; HttpOnly; SameSite=Strict; Secure
// (Secure unless secure_cookies is off); the API never takes a session from
// the URL or a JSON body, and no response carries one in its body. Every
// /api/ request must send the header `X-Bpo-Request: 1`: a cross-site page
// cannot add it without a CORS preflight, which the service never grants,
// so together with SameSite=Strict it stops cross-site request forgery.
//
// HTTP API (JSON bodies; errors are {"error": "..."}):
//   GET  /                 the page (HTML, CSS and JS inline; no external resources)
//   POST /api/login        {"rater","secret"} -> {"rater","labelled"} and Set-Cookie;
//                            401 unknown rater or wrong secret; 429 locked out or
//                            too many attempts (Retry-After: seconds)
//   GET  /api/next         -> {"pair": {"pair_id","prompt","left","right"} | null,
//                              "retry_after_ms", "labelled"}
//   POST /api/label        {"pair_id","choice": left|right|tie|skip}
//                            -> {"outcome","labelled"}; 409 not the shown pair or refused
//   GET  /api/stats        -> the rater's counts and the run's progress
//   POST /api/logout       ends the session and clears the cookie
//   GET  /metrics          Prometheus text format
// A missing X-Bpo-Request header is 403; unknown or expired sessions are
// 401, malformed requests 400, the coordinator unreachable 503.
//
// Thread-safe: the HTTP server calls handlers on several threads.
#ifndef BPO_ANNOTATOR_HUMAN_SERVICE_H_
#define BPO_ANNOTATOR_HUMAN_SERVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "annotator/human_login.h"
#include "annotator/human_rater.h"
#include "annotator/human_tokens.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/transport.h"

namespace bpo::annotator {

struct HumanOptions {
  // The coordinator's gRPC address (host:port).
  std::string coordinator_address;
  // Where the page is served (host:port; port 0 picks a free port).
  std::string http_address = "127.0.0.1:0";
  // How the service reaches the coordinator (an annotator certificate or a
  // bearer token) and serves the page: HTTPS with the certificate, unless
  // plaintext (loopback only).
  TransportSecurity transport;
  // Rater name -> the hash of their secret (LoadRaters). At least one.
  std::map<std::string, SecretHash> raters;
  LoginLimits login_limits;
  // Marks the session cookie Secure, so browsers send it only over HTTPS (and
  // to localhost). Off only for plain HTTP, where the cookie travels in clear.
  bool secure_cookies = true;
  // The time of the login limits; tests substitute a fake clock.
  std::function<absl::Time()> clock = absl::Now;
  // Asked for each lease (the run's annotation.lease_seconds caps it); the
  // service extends it while the rater's page is open.
  absl::Duration lease_duration = absl::Hours(1);
  // Pairs leased at a time per rater.
  int pairs_per_lease = 1;
  // Deadline of every gRPC call, and how long Start waits for the coordinator.
  absl::Duration rpc_deadline = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(30);
  // A rater whose page has not called the API for this long is inactive: its
  // lease is no longer extended and lapses, so its pair goes to someone else.
  // The page calls /api/stats every 30 s while it is open.
  absl::Duration idle_timeout = absl::Minutes(5);
  // Sessions unused for this long are forgotten (the rater signs in again).
  absl::Duration session_ttl = absl::Hours(12);
  // How often the keep-alive thread checks the leases (it calls the
  // coordinator only when one is due: a third of the way to its deadline).
  absl::Duration keepalive_tick = absl::Seconds(1);
  // Seeds the left/right order of the pairs; 0 draws a seed.
  uint64_t seed = 0;
  // Also serve the registry at /metrics on the page's port.
  bool serve_metrics = true;
};

class HumanAnnotationService {
 public:
  // Connects to the coordinator (UNAVAILABLE when it does not answer within
  // connect_timeout), registers the metrics in `registry` (which must outlive
  // the service; nullptr: a private one) and starts serving.
  // INVALID_ARGUMENT for bad options; UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HumanAnnotationService>> Start(
      HumanOptions options, metrics::Registry* registry = nullptr);
  ~HumanAnnotationService();  // Stop()
  HumanAnnotationService(const HumanAnnotationService&) = delete;
  HumanAnnotationService& operator=(const HumanAnnotationService&) = delete;

  int port() const { return port_; }
  // "host:port" with the bound port.
  const std::string& address() const { return address_; }
  // "https://host:port/" ("http://" for a plaintext transport).
  std::string url() const { return http_->Url("/"); }
  // Stops the keep-alive thread and the HTTP server. Leases still held lapse
  // at their deadlines and their pairs go back to the queue. Idempotent.
  void Stop();

 private:
  struct Session {
    std::string rater;
    absl::Time last_used;
  };
  struct Metrics {
    std::map<std::string, metrics::Counter*> labels;  // by "a", "b", "tie", "skip"
    metrics::Histogram* time_taken = nullptr;
    metrics::Gauge* raters_active = nullptr;
    metrics::Counter* refused = nullptr;
    metrics::Counter* logins_failed = nullptr;
    metrics::Counter* logins_limited = nullptr;
  };

  explicit HumanAnnotationService(HumanOptions options);
  absl::Status InitMetrics(metrics::Registry* registry);
  HttpResponse Route(const HttpRequest& request);
  HttpResponse Login(const HttpRequest& request);
  HttpResponse Next(const HttpRequest& request);
  HttpResponse Label(const HttpRequest& request);
  HttpResponse Stats(const HttpRequest& request);
  HttpResponse Logout(const HttpRequest& request);
  // The rater of the request's session cookie (refreshing its use), or a 401 response.
  std::shared_ptr<RaterWork> FindRater(const HttpRequest& request, HttpResponse* error);
  // Set-Cookie values that hold `session` and that clear it.
  std::string SessionCookie(const std::string& session) const;
  std::string ClearedSessionCookie() const;
  void KeepAliveLoop();
  int CountActive(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const HumanOptions options_;
  // Checked against the secrets given for unknown names, so that a wrong
  // name costs as long as a wrong secret.
  SecretHash unknown_rater_;
  LoginLimiter limiter_;
  std::unique_ptr<metrics::Registry> own_registry_;
  Metrics metrics_;
  CoordinatorStubs stubs_;
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;
  std::string address_;

  absl::Mutex mu_;
  // By the sha256 of the session id, so lookups reveal nothing of an id's
  // prefix through timing and a memory dump no usable id.
  std::map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<RaterWork>> raters_ ABSL_GUARDED_BY(mu_);  // by name
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread keepalive_;
};

}  // namespace bpo::annotator

#endif  // BPO_ANNOTATOR_HUMAN_SERVICE_H_
