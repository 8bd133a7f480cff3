#include "annotator/human_service.h"

#include <random>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "annotator/human_api.h"
#include "annotator/human_page.h"
#include "common/logging.h"
#include "common/rpc.h"
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

// Compares in time independent of where equal-length strings differ.
bool SecretEquals(const std::string& given, const std::string& secret) {
  if (secret.empty() || given.size() != secret.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < given.size(); ++i) diff |= given[i] ^ secret[i];
  return diff == 0;
}

std::string NewSessionId() {
  std::random_device random;
  std::string id;
  for (int i = 0; i < 4; ++i) absl::StrAppendFormat(&id, "%08x", random());
  return id;
}

// FNV-1a, then SplitMix64: a well-mixed per-rater seed.
uint64_t RaterSeed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  uint64_t z = seed ^ h;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
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
    : options_(std::move(options)) {}

HumanAnnotationService::~HumanAnnotationService() { Stop(); }

absl::StatusOr<std::unique_ptr<HumanAnnotationService>> HumanAnnotationService::Start(
    HumanOptions options, metrics::Registry* registry) {
  if (options.coordinator_address.empty()) {
    return absl::InvalidArgumentError("human annotation: the coordinator address is empty");
  }
  if (options.tokens.empty() && options.shared_token.empty()) {
    return absl::InvalidArgumentError("human annotation: give rater tokens or a shared token");
  }
  for (const auto& [name, token] : options.tokens) {
    if (!IsValidRaterName(name) || token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("human annotation: bad rater '", name, "' or empty token"));
    }
  }
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
  const HumanOptions& o = service->options_;
  BPO_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                       Connect(o.coordinator_address, "coordinator", o.connect_timeout));
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
  BPO_ASSIGN_OR_RETURN(service->http_, HttpServer::Start(http));
  service->port_ = service->http_->port();
  service->address_ = service->http_->address();
  if (o.serve_metrics) ServeMetrics(registry, service->http_.get());
  HumanAnnotationService* self = service.get();
  service->http_->Handle("/", [self](const HttpRequest& request) { return self->Route(request); });
  service->keepalive_ = std::thread([self] { self->KeepAliveLoop(); });
  BPO_LOG(INFO) << "human annotation: serving http://" << service->address_ << "/ for "
                << (o.tokens.empty()
                        ? std::string("any rater (shared token)")
                        : absl::StrCat(o.tokens.size(), " raters",
                                       o.shared_token.empty() ? "" : " and a shared token"))
                << "; coordinator " << o.coordinator_address << ", lease "
                << absl::FormatDuration(o.lease_duration) << " x " << o.pairs_per_lease
                << " pairs, idle after " << absl::FormatDuration(o.idle_timeout)
                << ", rpc deadline " << absl::FormatDuration(o.rpc_deadline);
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
    return page;
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

bool HumanAnnotationService::TokenMatches(const std::string& rater,
                                          const std::string& token) const {
  auto it = options_.tokens.find(rater);
  if (it != options_.tokens.end()) return SecretEquals(token, it->second);
  return !options_.shared_token.empty() && IsValidRaterName(rater) &&
         SecretEquals(token, options_.shared_token);
}

HttpResponse HumanAnnotationService::Login(const HttpRequest& request) {
  auto fields = ParseFields(request.body, {"rater", "token"});
  if (!fields.ok()) return StatusResponse(fields.status());
  const std::string& name = (*fields)["rater"];
  if (!TokenMatches(name, (*fields)["token"])) {
    return ErrorResponse(401, "unknown rater or wrong token");
  }
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
  const std::string session = NewSessionId();
  {
    absl::MutexLock lock(&mu_);
    sessions_[session] = Session{name, now};
    metrics_.raters_active->Set(CountActive(now));
  }
  BPO_LOG(INFO) << "human annotation: rater '" << name << "' signed in";
  return JsonResponse(
      200, json{{"session", session}, {"rater", name}, {"labelled", rater->counts().labelled}});
}

std::shared_ptr<RaterWork> HumanAnnotationService::FindRater(const std::string& session,
                                                             HttpResponse* error) {
  const absl::Time now = absl::Now();
  std::shared_ptr<RaterWork> rater;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session);
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
  std::shared_ptr<RaterWork> rater = FindRater(QueryParam(request.query, "session"), &error);
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
  auto fields = ParseFields(request.body, {"session", "pair_id", "choice"});
  if (!fields.ok()) return StatusResponse(fields.status());
  HttpResponse error;
  std::shared_ptr<RaterWork> rater = FindRater((*fields)["session"], &error);
  if (rater == nullptr) return error;
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
  std::shared_ptr<RaterWork> rater = FindRater(QueryParam(request.query, "session"), &error);
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
  auto fields = ParseFields(request.body, {"session"});
  if (!fields.ok()) return StatusResponse(fields.status());
  absl::MutexLock lock(&mu_);
  if (sessions_.erase((*fields)["session"]) == 0) {
    return ErrorResponse(401, "unknown or expired session");
  }
  return JsonResponse(200, json{{"signed_out", true}});
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
