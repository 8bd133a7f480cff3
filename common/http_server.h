// A small embedded HTTP server (civetweb, the server prometheus-cpp embeds)
// for /metrics and, later, the human-annotation web page.
//
// Handlers run on the server's worker threads and must be thread-safe.
// Request bodies are read in full up to max_body_bytes (413 beyond).
//
// civetweb serves one connection per worker thread. A client that connects
// and sends nothing holds its worker until request_timeout, so slow or idle
// clients can only starve the server when more than num_threads of them (plus
// connection_queue waiting behind) arrive within one request_timeout.
#ifndef BPO_COMMON_HTTP_SERVER_H_
#define BPO_COMMON_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics.h"

struct mg_context;
struct mg_connection;

namespace bpo {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded, without the query
  std::string query;   // raw, without '?'
  std::string body;
  // Names lower-cased; a repeated header's values joined with ", ".
  std::map<std::string, std::string> headers;
  std::string remote_address;  // the client's IP address
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::map<std::string, std::string> headers;
};

struct HttpServerOptions {
  // host:port to bind; port 0 picks a free port (see HttpServer::port()).
  std::string address = "127.0.0.1:0";
  // Worker threads, each serving one connection at a time (>= 1).
  int num_threads = 32;
  // Accepted connections waiting for a free worker (>= 1).
  int connection_queue = 64;
  // How long a worker waits for a request's headers and body before it
  // closes the connection (> 0, whole milliseconds). Keep-alive is off.
  absl::Duration request_timeout = absl::Seconds(5);
  size_t max_body_bytes = 1 << 20;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Binds and starts serving. UNAVAILABLE names the address and the reason
  // (e.g. the port is in use); INVALID_ARGUMENT for a malformed address or
  // an out-of-range option.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options);
  ~HttpServer();  // stops serving and joins the worker threads
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves `path` and everything below it. Call before traffic arrives.
  void Handle(const std::string& path, Handler handler);

  int port() const { return port_; }
  // "host:port" with the bound port.
  const std::string& address() const { return address_; }

 private:
  struct Route {
    HttpServer* server;
    Handler handler;
  };
  HttpServer() = default;
  static int Dispatch(mg_connection* conn, void* route);

  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::string address_;
  size_t max_body_bytes_ = 0;
  std::map<std::string, std::unique_ptr<Route>> routes_;
};

// Serves registry.Render() at /metrics in the Prometheus text format 0.0.4.
// The registry must outlive the server.
void ServeMetrics(const metrics::Registry* registry, HttpServer* server);

}  // namespace bpo

#endif  // BPO_COMMON_HTTP_SERVER_H_
