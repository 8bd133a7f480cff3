#include "common/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/endpoint.h"
#include "common/status_macros.h"

namespace bpo {
namespace {

constexpr size_t kMaxHeaderBytes = 16 << 10;

const char* StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 303:
      return "See Other";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
  }
  return "Status";
}

HttpResponse Plain(int status, std::string body) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::move(body), {}};
}

// Decodes %XX; false for a malformed escape or a NUL byte.
bool PercentDecode(absl::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      return false;
    }
    const std::string hex(in.substr(i + 1, 2));
    const int v = static_cast<int>(std::strtol(hex.c_str(), nullptr, 16));
    if (v == 0) return false;
    out->push_back(static_cast<char>(v));
    i += 2;
  }
  return true;
}

std::string OpenSslError() {
  char buf[256] = {0};
  ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
  return buf;
}

// The server's TLS context from PEM material; INVALID_ARGUMENT says why not.
absl::StatusOr<SSL_CTX*> MakeTlsContext(const HttpTls& tls) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("SSL_CTX_new: ", OpenSslError()));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  auto read_cert = [](const std::string& pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    return cert;
  };
  X509* cert = read_cert(tls.cert_pem);
  BIO* key_bio = BIO_new_mem_buf(tls.key_pem.data(), static_cast<int>(tls.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(key_bio);
  const bool ok = cert != nullptr && key != nullptr && SSL_CTX_use_certificate(ctx, cert) == 1 &&
                  SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok) {
    SSL_CTX_free(ctx);
    return absl::InvalidArgumentError(
        absl::StrCat("HTTPS: unusable certificate or key (", OpenSslError(), ")"));
  }
  if (tls.require_client_cert || tls.request_client_cert) {
    X509* ca = read_cert(tls.ca_pem);
    if (ca == nullptr || X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca) != 1) {
      X509_free(ca);
      SSL_CTX_free(ctx);
      return absl::InvalidArgumentError("HTTPS: unusable CA certificate for client certificates");
    }
    X509_free(ca);
    SSL_CTX_set_verify(
        ctx, SSL_VERIFY_PEER | (tls.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        nullptr);
  }
  return ctx;
}

}  // namespace

// One accepted connection, plain or TLS, on a non-blocking socket: every
// read and write waits at most until the connection's deadline, and stops
// when the server does.
class HttpServer::Connection {
 public:
  Connection(int fd, int wake_fd, absl::Time deadline)
      : fd_(fd), wake_fd_(wake_fd), deadline_(deadline) {}
  ~Connection() {
    if (ssl_ != nullptr) {
      SSL_shutdown(ssl_);
      SSL_free(ssl_);
    }
  }

  // The TLS handshake; false when it fails or runs out of time.
  bool Handshake(SSL_CTX* ctx) {
    ssl_ = SSL_new(ctx);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) return false;
    while (true) {
      const int rc = SSL_accept(ssl_);
      if (rc == 1) return true;
      if (!WaitFor(SSL_get_error(ssl_, rc))) return false;
    }
  }

  // The common name of the client's verified certificate, if any.
  std::string PeerName() const {
    if (ssl_ == nullptr) return "";
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr) return "";
    char cn[256] = {0};
    const int n =
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    X509_free(cert);
    return n > 0 ? std::string(cn, static_cast<size_t>(n)) : "";
  }

  // Up to `n` bytes; 0 at end of stream, -1 on error or timeout.
  long Read(char* buf, size_t n) {
    while (true) {
      if (ssl_ != nullptr) {
        const int rc = SSL_read(ssl_, buf, static_cast<int>(n));
        if (rc > 0) return rc;
        const int err = SSL_get_error(ssl_, rc);
        if (err == SSL_ERROR_ZERO_RETURN) return 0;
        if (!WaitFor(err)) return -1;
      } else {
        const ssize_t rc = recv(fd_, buf, n, 0);
        if (rc >= 0) return rc;
        if (errno == EINTR) continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || !Wait(POLLIN)) return -1;
      }
    }
  }

  bool WriteAll(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      if (ssl_ != nullptr) {
        const int rc = SSL_write(ssl_, bytes.data() + done, static_cast<int>(bytes.size() - done));
        if (rc > 0) {
          done += static_cast<size_t>(rc);
        } else if (!WaitFor(SSL_get_error(ssl_, rc))) {
          return false;
        }
      } else {
        const ssize_t rc = send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        if (rc > 0) {
          done += static_cast<size_t>(rc);
        } else if (rc < 0 && errno == EINTR) {
          continue;
        } else if (rc == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || !Wait(POLLOUT)) {
          return false;
        }
      }
    }
    return true;
  }

 private:
  bool WaitFor(int ssl_error) {
    if (ssl_error == SSL_ERROR_WANT_READ) return Wait(POLLIN);
    if (ssl_error == SSL_ERROR_WANT_WRITE) return Wait(POLLOUT);
    return false;
  }
  // Waits for `events` until the deadline; false on timeout or stop.
  bool Wait(short events) {
    while (true) {
      const int64_t left = absl::ToInt64Milliseconds(deadline_ - absl::Now());
      if (left <= 0) return false;
      pollfd p[2] = {{fd_, events, 0}, {wake_fd_, POLLIN, 0}};
      const int rc = poll(p, 2, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0 || (p[1].revents & POLLIN)) return false;
      return true;
    }
  }

  const int fd_;
  const int wake_fd_;
  const absl::Time deadline_;
  SSL* ssl_ = nullptr;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options) {
  auto endpoint = ParseEndpoint(options.address);
  if (!endpoint.ok()) return endpoint.status();
  if (options.num_threads < 1 || options.connection_queue < 1 || options.num_threads > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "HTTP server: num_threads must be in [1, 4096] and connection_queue >= 1, got ",
        options.num_threads, " and ", options.connection_queue));
  }
  const int64_t timeout_ms = absl::ToInt64Milliseconds(options.request_timeout);
  if (timeout_ms < 1 || timeout_ms > 3600 * 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP server: request_timeout must be in [1ms, 1h], got ",
                     absl::FormatDuration(options.request_timeout)));
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->max_body_bytes_ = options.max_body_bytes;
  server->connection_queue_ = static_cast<size_t>(options.connection_queue);
  server->request_timeout_ = options.request_timeout;
  server->tls_ = options.tls;
  if (options.tls.has_value()) {
    if (options.tls->cert_pem.empty() || options.tls->key_pem.empty() ||
        (options.tls->require_client_cert && options.tls->ca_pem.empty())) {
      return absl::InvalidArgumentError(
          "HTTPS server: a certificate, its key and (for client certificates) a CA are required");
    }
    BPO_ASSIGN_OR_RETURN(server->ssl_ctx_, MakeTlsContext(*options.tls));
  }

  const std::string where = endpoint->ToString();
  addrinfo hints = {};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string host = endpoint->host.empty() ? "0.0.0.0" : endpoint->host;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(endpoint->port).c_str(), &hints, &res);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", where, ": ", gai_strerror(rc)));
  }
  const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  std::string why;
  if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
    why = std::strerror(errno);
  }
  freeaddrinfo(res);
  if (!why.empty()) {
    if (fd >= 0) close(fd);
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", where, ": ", why));
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  sockaddr_storage bound = {};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  server->listen_fd_ = fd;
  server->port_ =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  Endpoint actual = *endpoint;
  actual.port = server->port_;
  server->address_ = actual.ToString();
  server->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  HttpServer* self = server.get();
  for (int i = 0; i < options.num_threads; ++i) {
    server->workers_.emplace_back([self] { self->WorkLoop(); });
  }
  server->acceptor_ = std::thread([self] { self->AcceptLoop(); });
  return server;
}

HttpServer::~HttpServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  ready_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  for (std::thread& t : workers_) t.join();
  for (auto& [fd, peer] : queue_) close(fd);
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

void HttpServer::Handle(const std::string& path, Handler handler) {
  routes_[path] = std::move(handler);
}

const HttpServer::Handler* HttpServer::FindRoute(const std::string& path) const {
  const Handler* best = nullptr;
  size_t best_len = 0;
  for (const auto& [prefix, handler] : routes_) {
    const bool match =
        path == prefix || prefix == "/" ||
        (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
         (prefix.back() == '/' || path[prefix.size()] == '/'));
    if (match && (best == nullptr || prefix.size() > best_len)) {
      best = &handler;
      best_len = prefix.size();
    }
  }
  return best;
}

void HttpServer::AcceptLoop() {
  while (true) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents & POLLIN) return;
    sockaddr_storage addr = {};
    socklen_t len = sizeof(addr);
    const int fd =
        accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    char host[INET6_ADDRSTRLEN] = {0};
    if (addr.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, host, sizeof(host));
    } else {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, host, sizeof(host));
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= connection_queue_) {
      lock.unlock();
      close(fd);  // full: refuse at once rather than queue without bound
      continue;
    }
    queue_.emplace_back(fd, host);
    lock.unlock();
    ready_.notify_one();
  }
}

void HttpServer::WorkLoop() {
  while (true) {
    std::unique_lock<std::mutex> lock(mu_);
    ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    auto [fd, peer] = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    Serve(fd, peer);
    close(fd);
  }
}

void HttpServer::Serve(int fd, const std::string& peer) {
  Connection c(fd, wake_fd_, absl::Now() + request_timeout_);
  if (ssl_ctx_ != nullptr && !c.Handshake(ssl_ctx_)) return;
  auto send = [&c](const HttpResponse& r) {
    std::string out =
        absl::StrCat("HTTP/1.1 ", r.status, " ", StatusText(r.status),
                     "\r\nContent-Type: ", r.content_type, "\r\nContent-Length: ", r.body.size(),
                     "\r\nCache-Control: no-store\r\nConnection: close\r\n");
    for (const auto& [k, v] : r.headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
    absl::StrAppend(&out, "\r\n", r.body);
    c.WriteAll(out);
  };

  // The request line and headers.
  std::string raw;
  size_t head_end = std::string::npos;
  char buf[8192];
  while (head_end == std::string::npos) {
    if (raw.size() > kMaxHeaderBytes) {
      send(Plain(431, "request headers too large\n"));
      return;
    }
    const long n = c.Read(buf, sizeof(buf));
    if (n <= 0) return;  // closed, timed out or stopping: nothing to answer
    raw.append(buf, static_cast<size_t>(n));
    head_end = raw.find("\r\n\r\n");
  }
  HttpRequest req;
  req.remote_address = peer;
  req.peer_identity = c.PeerName();
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(raw).substr(0, head_end), "\r\n");
  std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.") || parts[1].empty() ||
      parts[1][0] != '/') {
    send(Plain(400, "malformed request line\n"));
    return;
  }
  req.method = std::string(parts[0]);
  const size_t q = parts[1].find('?');
  if (q != absl::string_view::npos) req.query = std::string(parts[1].substr(q + 1));
  if (!PercentDecode(parts[1].substr(0, q), &req.path)) {
    send(Plain(400, "malformed path\n"));
    return;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      send(Plain(400, "malformed header\n"));
      return;
    }
    const std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    const std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    auto [it, fresh] = req.headers.emplace(name, value);
    if (!fresh) absl::StrAppend(&it->second, ", ", value);
  }
  if (req.headers.count("transfer-encoding")) {
    send(Plain(501, "chunked request bodies are not supported; send Content-Length\n"));
    return;
  }

  // The body, by Content-Length.
  size_t length = 0;
  if (auto it = req.headers.find("content-length"); it != req.headers.end()) {
    uint64_t v = 0;
    if (!absl::SimpleAtoi(it->second, &v)) {
      send(Plain(400, "malformed Content-Length\n"));
      return;
    }
    if (v > max_body_bytes_) {
      send(Plain(413, "request body too large\n"));
      return;
    }
    length = static_cast<size_t>(v);
  }
  req.body = raw.substr(head_end + 4);
  if (req.body.size() > length) req.body.resize(length);
  while (req.body.size() < length) {
    const long n = c.Read(buf, std::min(sizeof(buf), length - req.body.size()));
    if (n <= 0) return;
    req.body.append(buf, static_cast<size_t>(n));
  }

  const Handler* handler = FindRoute(req.path);
  if (handler == nullptr) {
    send(Plain(404, "not found\n"));
    return;
  }
  HttpResponse resp;
  try {
    resp = (*handler)(req);
  } catch (const std::exception& e) {
    resp = Plain(500, absl::StrCat("error: ", e.what(), "\n"));
  }
  send(resp);
}

absl::StatusOr<HttpServerOptions> MetricsServerOptions(const std::string& address,
                                                       const TransportSecurity& transport) {
  HttpServerOptions options;
  options.address = address;
  if (transport.plaintext) {
    BPO_ASSIGN_OR_RETURN(const Endpoint ep, ParseEndpoint(address));
    if (!IsLoopbackHost(ep.host)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot serve /metrics on ", address,
          ": security.plaintext serves only on loopback addresses (use TLS: docs/security.md)"));
    }
    return options;
  }
  options.tls = HttpTls{transport.cert_pem, transport.key_pem, transport.ca_pem,
                        transport.metrics_client_certs};
  return options;
}

void ServeMetrics(const metrics::Registry* registry, HttpServer* server,
                  bool require_client_identity) {
  server->Handle("/metrics", [registry, require_client_identity](const HttpRequest& req) {
    if (require_client_identity && req.peer_identity.empty()) {
      return HttpResponse{403,
                          "text/plain; charset=utf-8",
                          "/metrics needs a client certificate of the run's CA\n",
                          {}};
    }
    if (req.method != "GET" && req.method != "HEAD") {
      return HttpResponse{405, "text/plain; charset=utf-8", "use GET\n", {{"Allow", "GET"}}};
    }
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", registry->Render(), {}};
  });
}

}  // namespace bpo
