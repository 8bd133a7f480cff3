// A small embedded HTTP/1.1 server, plain or HTTPS (OpenSSL), for /metrics
// and the human-annotation web page: one request per connection
// (Connection: close), bodies by Content-Length.
//
// Handlers run on the server's worker threads and must be thread-safe.
// Request bodies are read in full up to max_body_bytes (413 beyond); the
// request line and headers up to 16 KiB (431 beyond).
//
// Each worker thread serves one connection at a time. A connection gets
// request_timeout in all (TLS handshake, request and response); a client that
// connects and sends nothing, or sends slowly, holds its worker at most that
// long. Accepted connections wait for a worker in a queue of at most
// connection_queue; beyond it they are closed at once. So slow or idle
// clients can only starve the server when more than num_threads +
// connection_queue of them arrive within one request_timeout.
#ifndef BPO_COMMON_HTTP_SERVER_H_
#define BPO_COMMON_HTTP_SERVER_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "common/transport.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace bpo {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // percent-decoded, without the query
  std::string query;   // raw, without '?'
  std::string body;
  // Names lower-cased; a repeated header's values joined with ", ".
  std::map<std::string, std::string> headers;
  std::string remote_address;  // the client's IP address
  // HTTPS with a client certificate of the CA: its common name
  // ("<role>:<name>" for certificates of the run's CA), else empty.
  std::string peer_identity;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::map<std::string, std::string> headers;
};

// HTTPS: the server's certificate and key (PEM), and optionally client
// certificates required of every connection, checked against ca_pem.
struct HttpTls {
  std::string cert_pem;
  std::string key_pem;
  std::string ca_pem;
  bool require_client_cert = false;
  // Without require_client_cert: ask for one and verify it when the client
  // has one (a browser without one still connects); HttpRequest.peer_identity
  // says who presented one.
  bool request_client_cert = false;
};

struct HttpServerOptions {
  // host:port to bind; port 0 picks a free port (see HttpServer::port()).
  std::string address = "127.0.0.1:0";
  // Worker threads, each serving one connection at a time (>= 1).
  int num_threads = 32;
  // Accepted connections waiting for a free worker (>= 1).
  int connection_queue = 64;
  // How long one connection may take in all, TLS handshake and request
  // included, before it is closed (in [1 ms, 1 h]).
  absl::Duration request_timeout = absl::Seconds(5);
  size_t max_body_bytes = 1 << 20;
  // Serve HTTPS (TLS 1.2 or later) instead of plain HTTP.
  std::optional<HttpTls> tls;
};

// Options of a process's /metrics server on `address` under `transport`:
// HTTPS with the process's certificate, requiring a client certificate of
// the run's CA unless security.metrics_client_certs is off; plain HTTP for a
// plaintext transport, which INVALID_ARGUMENT refuses off loopback.
absl::StatusOr<HttpServerOptions> MetricsServerOptions(const std::string& address,
                                                       const TransportSecurity& transport);

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Binds and starts serving. UNAVAILABLE names the address and the reason
  // (e.g. the port is in use); INVALID_ARGUMENT for a malformed address, an
  // out-of-range option or unusable TLS material.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options);
  ~HttpServer();  // stops serving and joins the threads
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves `path` and everything below it ("/a" serves "/a" and "/a/b", not
  // "/ab"; "/" serves everything); the longest match wins. Call before
  // traffic arrives.
  void Handle(const std::string& path, Handler handler);

  int port() const { return port_; }
  // "host:port" with the bound port.
  const std::string& address() const { return address_; }
  // "https://host:port/metrics" for path "/metrics" ("http://" without TLS).
  std::string Url(const std::string& path) const {
    return (tls_.has_value() ? "https://" : "http://") + address_ + path;
  }

 private:
  class Connection;
  HttpServer() = default;
  void AcceptLoop();
  void WorkLoop();
  void Serve(int fd, const std::string& peer);
  const Handler* FindRoute(const std::string& path) const;

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd, readable once the server stops
  int port_ = 0;
  std::string address_;
  size_t max_body_bytes_ = 0;
  size_t connection_queue_ = 0;
  absl::Duration request_timeout_;
  std::optional<HttpTls> tls_;
  SSL_CTX* ssl_ctx_ = nullptr;
  std::map<std::string, Handler> routes_;  // written before traffic only
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::pair<int, std::string>> queue_;  // accepted fds and their peers
  bool stopping_ = false;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

// Serves registry.Render() at /metrics in the Prometheus text format 0.0.4.
// The registry must outlive the server. With `require_client_identity`, only
// to clients that presented a verified certificate (403 otherwise): for a
// server that lets browsers in without one.
void ServeMetrics(const metrics::Registry* registry, HttpServer* server,
                  bool require_client_identity = false);

}  // namespace bpo

#endif  // BPO_COMMON_HTTP_SERVER_H_
