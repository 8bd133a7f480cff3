#include "annotator/human_service.h"

#include <openssl/rand.h>

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "annotator/human_api.h"
#include "annotator/human_page.h"
#include "common/endpoint.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "common/stable_hash.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace bpo::annotator {
namespace {

using json = nlohmann::json;

constexpr char kJson[] = "application/json; charset=utf-8";

// Model output may hold invalid UTF-8 (a token split mid-character): replace it.
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpResponse JsonResponse(int status, const json& body) {
  return HttpResponse{status, kJson, Dump(body) + "\n", {}};
}

HttpResponse ErrorResponse(int status, const std::string& message) {
  return JsonResponse(status, json{{"error", message}});
}

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
      return 503;
    default:
      return 500;
  }
}

HttpResponse StatusResponse(const absl::Status& status) {
  return ErrorResponse(HttpStatusFor(status), std::string(status.message()));
}

constexpr char kSessionCookie[] = "bpo_session";

// The value of the cookie `name` in a Cookie header ("" when absent).
std::string CookieValue(const HttpRequest& request, absl::string_view name) {
  auto header = request.headers.find("cookie");
  if (header == request.headers.end()) return "";
  for (absl::string_view part : absl::StrSplit(header->second, ';')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(absl::StripAsciiWhitespace(part), absl::MaxSplits('=', 1));
    if (kv.first == name) return std::string(kv.second);
  }
  return "";
}

// 256 random bits as 64 hex digits.
absl::StatusOr<std::string> NewSessionId() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed");
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

HttpResponse TooManyAttempts(absl::Duration wait) {
  const int64_t seconds =
      std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1))));
  HttpResponse r =
      ErrorResponse(429, absl::StrCat("too many sign-in attempts: try again in ", seconds, " s"));
  r.headers["Retry-After"] = absl::StrCat(seconds);
  return r;
}

// A well-mixed per-rater seed.
uint64_t RaterSeed(uint64_t seed, const std::string& name) {
  return StableCombine({seed, StableHash(name)});
}

const char* ChoiceKey(bpo::v1::Choice choice) {
  switch (choice) {
    case bpo::v1::CHOICE_A:
      return "a";
    case bpo::v1::CHOICE_B:
      return "b";
    case bpo::v1::CHOICE_TIE:
      return "tie";
    case bpo::v1::CHOICE_SKIP:
      return "skip";
    default:
      return "unspecified";
  }
}

}  // namespace

HumanAnnotationService::HumanAnnotationService(HumanOptions options)
    : options_(std::move(options)), limiter_(options_.login_limits) {}

HumanAnnotationService::~HumanAnnotationService() { Stop(); }

absl::StatusOr<std::unique_ptr<HumanAnnotationService>> HumanAnnotationService::Start(
    HumanOptions options, metrics::Registry* registry) {
  if (options.coordinator_address.empty()) {
    return absl::InvalidArgumentError("human annotation: the coordinator address is empty");
  }
  if (options.raters.empty()) {
    return absl::InvalidArgumentError(
        "human annotation: no raters (make a raters file with `bpo annotator add-rater`)");
  }
  int iterations = 0;
  for (const auto& [name, hash] : options.raters) {
    if (!IsValidRaterName(name) || hash.iterations < kSecretHashIterationsMin ||
        hash.hash.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("human annotation: bad rater name '", name, "' or secret hash"));
    }
    iterations = std::max(iterations, hash.iterations);
  }
  BPO_RETURN_IF_ERROR(ValidateLoginLimits(options.login_limits));
  if (!options.clock) return absl::InvalidArgumentError("human annotation: no clock");
  if (options.lease_duration <= absl::ZeroDuration() ||
      options.rpc_deadline <= absl::ZeroDuration() ||
      options.idle_timeout <= absl::ZeroDuration() ||
      options.keepalive_tick <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "human annotation: lease_duration, rpc_deadline, idle_timeout and keepalive_tick must be "
        "positive");
  }
  if (options.pairs_per_lease < 1 || options.pairs_per_lease > 64) {
    return absl::InvalidArgumentError(absl::StrCat("human annotation: pairs_per_lease ",
                                                   options.pairs_per_lease, " is not in [1, 64]"));
  }
  if (options.seed == 0)
    options.seed = (uint64_t{std::random_device()()} << 32) | std::random_device()();

  std::unique_ptr<HumanAnnotationService> service(new HumanAnnotationService(std::move(options)));
  BPO_ASSIGN_OR_RETURN(std::string unknown_secret, NewRaterSecret());
  BPO_ASSIGN_OR_RETURN(service->unknown_rater_, HashSecret(unknown_secret, iterations));
  const HumanOptions& o = service->options_;
  BPO_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                       Connect(o.coordinator_address, "coordinator", o.connect_timeout, o.transport,
                               Role::kCoordinator));
  service->stubs_.address = o.coordinator_address;
  service->stubs_.deadline = o.rpc_deadline;
  service->stubs_.coordinator = bpo::v1::Coordinator::NewStub(channel);
  service->stubs_.queue = bpo::v1::AnnotationQueue::NewStub(channel);
  if (registry == nullptr) {
    service->own_registry_ = std::make_unique<metrics::Registry>();
    registry = service->own_registry_.get();
  }
  BPO_RETURN_IF_ERROR(service->InitMetrics(registry));

  HttpServerOptions http;
  http.address = o.http_address;
  http.max_body_bytes = 64 << 10;
  if (o.transport.plaintext) {
    BPO_ASSIGN_OR_RETURN(const Endpoint ep, ParseEndpoint(o.http_address));
    if (!IsLoopbackHost(ep.host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("human annotation: cannot serve the rating page on ", o.http_address,
                       " in plain HTTP: security.plaintext serves only on loopback addresses"));
    }
  } else {
    // Browsers hold no client certificate; Prometheus presents one for /metrics.
    http.tls = HttpTls{o.transport.cert_pem, o.transport.key_pem, o.transport.ca_pem,
                       /*require_client_cert=*/false, /*request_client_cert=*/true};
  }
  BPO_ASSIGN_OR_RETURN(service->http_, HttpServer::Start(http));
  service->port_ = service->http_->port();
  service->address_ = service->http_->address();
  if (o.serve_metrics) {
    ServeMetrics(registry, service->http_.get(),
                 /*require_client_identity=*/!o.transport.plaintext);
  }
  HumanAnnotationService* self = service.get();
  service->http_->Handle("/", [self](const HttpRequest& request) { return self->Route(request); });
  service->keepalive_ = std::thread([self] { self->KeepAliveLoop(); });
  const LoginLimits& limits = o.login_limits;
  BPO_LOG(INFO) << "human annotation: serving " << service->http_->Url("/") << " for "
                << o.raters.size() << " raters; "
                << (o.secure_cookies ? "Secure session cookies (HTTPS or localhost only)"
                                     : "session cookies without Secure (plain HTTP)")
                << "; sign-in lockout after " << limits.rater_failures_max
                << " failures per rater or " << limits.address_failures_max
                << " per address within " << absl::FormatDuration(limits.window) << ", at most "
                << limits.attempts_per_second_max << " attempts/s; coordinator "
                << o.coordinator_address << ", lease " << absl::FormatDuration(o.lease_duration)
                << " x " << o.pairs_per_lease << " pairs, idle after "
                << absl::FormatDuration(o.idle_timeout) << ", rpc deadline "
                << absl::FormatDuration(o.rpc_deadline);
  return service;
}

absl::Status HumanAnnotationService::InitMetrics(metrics::Registry* registry) {
  BPO_ASSIGN_OR_RETURN(
      auto* labels,
      registry->AddCounter("bpo_human_labels_total", "Choices submitted by human raters, by choice",
                           {"choice"}));
  for (const char* choice : {"a", "b", "tie", "skip"}) {
    metrics_.labels[choice] = &labels->Add({{"choice", choice}});
  }
  BPO_ASSIGN_OR_RETURN(
      auto* seconds, registry->AddHistogram("bpo_human_label_seconds",
                                            "Time from showing a pair to the rater's choice",
                                            {1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600}));
  metrics_.time_taken = &seconds->Add({});
  BPO_ASSIGN_OR_RETURN(
      auto* active,
      registry->AddGauge("bpo_human_raters_active",
                         "Signed-in raters whose page used the API within idle_timeout"));
  metrics_.raters_active = &active->Add({});
  BPO_ASSIGN_OR_RETURN(auto* refused,
                       registry->AddCounter("bpo_human_labels_refused_total",
                                            "Choices the coordinator refused (the lease lapsed and "
                                            "the pair went to another rater)"));
  metrics_.refused = &refused->Add({});
  BPO_ASSIGN_OR_RETURN(auto* failed,
                       registry->AddCounter("bpo_human_logins_failed_total",
                                            "Sign-ins refused for an unknown rater or a wrong "
                                            "secret"));
  metrics_.logins_failed = &failed->Add({});
  BPO_ASSIGN_OR_RETURN(auto* limited,
                       registry->AddCounter("bpo_human_logins_limited_total",
                                            "Sign-ins refused unchecked (HTTP 429): a lockout or "
                                            "the per-second cap"));
  metrics_.logins_limited = &limited->Add({});
  return absl::OkStatus();
}

void HumanAnnotationService::Stop() {
  http_.reset();  // joins the handler threads
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (keepalive_.joinable()) keepalive_.join();
}

HttpResponse HumanAnnotationService::Route(const HttpRequest& request) {
  struct Api {
    const char* path;
    const char* method;
    HttpResponse (HumanAnnotationService::*handler)(const HttpRequest&);
  };
  static const Api kApi[] = {
      {"/api/login", "POST", &HumanAnnotationService::Login},
      {"/api/next", "GET", &HumanAnnotationService::Next},
      {"/api/label", "POST", &HumanAnnotationService::Label},
      {"/api/stats", "GET", &HumanAnnotationService::Stats},
      {"/api/logout", "POST", &HumanAnnotationService::Logout},
  };
  if (request.path == "/" || request.path == "/index.html") {
    if (request.method != "GET" && request.method != "HEAD") {
      return HttpResponse{405, "text/plain; charset=utf-8", "use GET\n", {{"Allow", "GET"}}};
    }
    HttpResponse page{200, "text/html; charset=utf-8", std::string(HumanPageHtml()), {}};
    page.headers["Content-Security-Policy"] =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
    page.headers["X-Content-Type-Options"] = "nosniff";
    page.headers["Referrer-Policy"] = "no-referrer";
    return page;
  }
  if (absl::StartsWith(request.path, "/api/")) {
    auto marker = request.headers.find("x-bpo-request");
    if (marker == request.headers.end() || marker->second != "1") {
      return ErrorResponse(403, "API requests must send the header 'X-Bpo-Request: 1'");
    }
  }
  for (const Api& api : kApi) {
    if (request.path != api.path) continue;
    if (request.method != api.method) {
      HttpResponse r = ErrorResponse(405, absl::StrCat("use ", api.method, " for ", api.path));
      r.headers["Allow"] = api.method;
      return r;
    }
    return (this->*api.handler)(request);
  }
  return ErrorResponse(404, absl::StrCat("no such page: ", request.path));
}

std::string HumanAnnotationService::SessionCookie(const std::string& session) const {
  return absl::StrCat(kSessionCookie, "=", session, "; Path=/; HttpOnly; SameSite=Strict",
                      options_.secure_cookies ? "; Secure" : "");
}

std::string HumanAnnotationService::ClearedSessionCookie() const {
  return absl::StrCat(kSessionCookie, "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
                      options_.secure_cookies ? "; Secure" : "");
}

HttpResponse HumanAnnotationService::Login(const HttpRequest& request) {
  auto fields = ParseFields(request.body, {"rater", "secret"});
  if (!fields.ok()) return StatusResponse(fields.status());
  const std::string& name = (*fields)["rater"];
  auto known = options_.raters.find(name);
  const bool is_known = known != options_.raters.end();
  const absl::Time attempt = options_.clock();
  if (absl::Duration wait = limiter_.Admit(name, is_known, request.remote_address, attempt);
      wait > absl::ZeroDuration()) {
    metrics_.logins_limited->Increment();
    return TooManyAttempts(wait);
  }
  if (!SecretMatches((*fields)["secret"], is_known ? known->second : unknown_rater_) || !is_known) {
    metrics_.logins_failed->Increment();
    if (limiter_.Failed(name, is_known, request.remote_address, attempt)) {
      BPO_LOG(WARNING) << "human annotation: sign-ins "
                       << (is_known ? absl::StrCat("as rater '", name, "' or ") : "") << "from "
                       << request.remote_address << " locked out for "
                       << absl::FormatDuration(options_.login_limits.window)
                       << " after repeated failures";
    }
    return ErrorResponse(401, "unknown rater or wrong secret");
  }
  limiter_.Succeeded(name);
  absl::StatusOr<std::string> session = NewSessionId();
  if (!session.ok()) return StatusResponse(session.status());
  std::shared_ptr<RaterWork> rater;
  {
    absl::MutexLock lock(&mu_);
    auto& slot = raters_[name];
    if (slot == nullptr) {
      RaterOptions ro;
      ro.lease_duration = options_.lease_duration;
      ro.pairs_per_lease = options_.pairs_per_lease;
      slot = std::make_shared<RaterWork>(name, &stubs_, ro, RaterSeed(options_.seed, name));
    }
    rater = slot;
  }
  // Registers (again: the same worker) on every sign-in.
  if (absl::Status registered = rater->Register(); !registered.ok()) {
    BPO_LOG(WARNING) << "human annotation: cannot register rater '" << name << "': " << registered;
    return StatusResponse(registered);
  }
  const absl::Time now = absl::Now();
  rater->Touch(now);
  {
    absl::MutexLock lock(&mu_);
    sessions_[Sha256Hex(*session)] = Session{name, now};
    metrics_.raters_active->Set(CountActive(now));
  }
  BPO_LOG(INFO) << "human annotation: rater '" << name << "' signed in from "
                << request.remote_address;
  HttpResponse ok =
      JsonResponse(200, json{{"rater", name}, {"labelled", rater->counts().labelled}});
  ok.headers["Set-Cookie"] = SessionCookie(*session);
  return ok;
}

std::shared_ptr<RaterWork> HumanAnnotationService::FindRater(const HttpRequest& request,
                                                             HttpResponse* error) {
  const std::string session = CookieValue(request, kSessionCookie);
  const absl::Time now = absl::Now();
  std::shared_ptr<RaterWork> rater;
  if (!session.empty()) {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(Sha256Hex(session));
    if (it != sessions_.end()) {
      it->second.last_used = now;
      rater = raters_.at(it->second.rater);
    }
  }
  if (rater == nullptr) {
    *error = ErrorResponse(401, session.empty() ? "no session: sign in first"
                                                : "unknown or expired session: sign in again");
    return nullptr;
  }
  rater->Touch(now);
  return rater;
}

HttpResponse HumanAnnotationService::Next(const HttpRequest& request) {
  HttpResponse error;
  std::shared_ptr<RaterWork> rater = FindRater(request, &error);
  if (rater == nullptr) return error;
  absl::StatusOr<RaterWork::Next> next = rater->NextPair(absl::Now());
  if (!next.ok()) return StatusResponse(next.status());
  json out{{"labelled", rater->counts().labelled}, {"pair", nullptr}};
  if (next->pair.has_value()) {
    out["pair"] = json{{"pair_id", next->pair->pair_id},
                       {"prompt", next->pair->prompt},
                       {"left", next->pair->left},
                       {"right", next->pair->right}};
  } else {
    out["retry_after_ms"] = absl::ToInt64Milliseconds(next->retry_after);
  }
  return JsonResponse(200, out);
}

HttpResponse HumanAnnotationService::Label(const HttpRequest& request) {
  HttpResponse error;
  std::shared_ptr<RaterWork> rater = FindRater(request, &error);
  if (rater == nullptr) return error;
  auto fields = ParseFields(request.body, {"pair_id", "choice"});
  if (!fields.ok()) return StatusResponse(fields.status());
  absl::StatusOr<Side> side = ParseSide((*fields)["choice"]);
  if (!side.ok()) return StatusResponse(side.status());
  absl::StatusOr<RaterWork::Outcome> outcome =
      rater->Submit((*fields)["pair_id"], *side, absl::Now());
  if (!outcome.ok()) {
    if (outcome.status().code() == absl::StatusCode::kFailedPrecondition)
      metrics_.refused->Increment();
    return StatusResponse(outcome.status());
  }
  if (!outcome->duplicate) {
    metrics_.labels.at(ChoiceKey(outcome->choice))->Increment();
    metrics_.time_taken->Observe(absl::ToDoubleSeconds(outcome->time_taken));
  }
  return JsonResponse(200, json{{"outcome", outcome->duplicate ? "DUPLICATE" : "ACCEPTED"},
                                {"labelled", rater->counts().labelled}});
}

HttpResponse HumanAnnotationService::Stats(const HttpRequest& request) {
  HttpResponse error;
  std::shared_ptr<RaterWork> rater = FindRater(request, &error);
  if (rater == nullptr) return error;
  const RaterWork::Counts counts = rater->counts();
  json by_choice = json::object();
  for (bpo::v1::Choice c :
       {bpo::v1::CHOICE_A, bpo::v1::CHOICE_B, bpo::v1::CHOICE_TIE, bpo::v1::CHOICE_SKIP}) {
    auto it = counts.by_choice.find(c);
    by_choice[ChoiceKey(c)] = it == counts.by_choice.end() ? 0 : it->second;
  }
  json out{{"rater", rater->name()}, {"labelled", counts.labelled}, {"by_choice", by_choice}};
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_deadline);
  bpo::v1::RunStatus run;
  const grpc::Status status = stubs_.coordinator->GetRunStatus(&context, {}, &run);
  if (status.ok()) {
    out["run"] = json{{"run_id", run.run_id()},
                      {"state", bpo::v1::RunState_Name(run.state())},
                      {"pairs_sampled", run.pairs_sampled()},
                      {"pairs_annotated", run.pairs_annotated()},
                      {"pairs_total", run.pairs_total()},
                      {"rater_pairs_compared", run.rater_pairs_compared()},
                      {"rater_agreement", run.rater_agreement()}};
  } else {
    out["run_error"] = std::string(FromGrpcStatus(status, "Coordinator.GetRunStatus").message());
  }
  return JsonResponse(200, out);
}

HttpResponse HumanAnnotationService::Logout(const HttpRequest& request) {
  const std::string session = CookieValue(request, kSessionCookie);
  bool ended = false;
  if (!session.empty()) {
    absl::MutexLock lock(&mu_);
    ended = sessions_.erase(Sha256Hex(session)) > 0;
  }
  HttpResponse out = JsonResponse(200, json{{"signed_out", ended}});
  out.headers["Set-Cookie"] = ClearedSessionCookie();
  return out;
}

int HumanAnnotationService::CountActive(absl::Time now) {
  int active = 0;
  for (const auto& [name, rater] : raters_)
    active += now - rater->last_seen() <= options_.idle_timeout;
  return active;
}

void HumanAnnotationService::KeepAliveLoop() {
  while (true) {
    std::vector<std::shared_ptr<RaterWork>> active;
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.keepalive_tick)) return;
      const absl::Time now = absl::Now();
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        it =
            now - it->second.last_used > options_.session_ttl ? sessions_.erase(it) : std::next(it);
      }
      for (const auto& [name, rater] : raters_) {
        if (now - rater->last_seen() <= options_.idle_timeout) active.push_back(rater);
      }
      metrics_.raters_active->Set(static_cast<double>(active.size()));
    }
    // An idle rater's lease is left to lapse: its pair goes to someone else.
    for (const auto& rater : active) {
      if (rater->due() > absl::Now()) continue;
      if (absl::Status s = rater->KeepAlive(absl::Now()); !s.ok()) {
        BPO_LOG(WARNING) << "human annotation: keeping rater '" << rater->name()
                         << "' alive: " << s;
      }
    }
  }
}

}  // namespace bpo::annotator
