#include "common/http_server.h"

#include <civetweb.h>
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/endpoint.h"

// Debian's civetweb is built with USE_STACK_SIZE=102400: it asks for 100 KiB
// thread stacks. glibc carves a thread's static TLS out of its stack, and a
// process that has loaded LibTorch and its dependencies has more static TLS
// than that, so pthread_create fails with EINVAL ("Cannot create first worker
// thread"). This definition in the executable takes precedence over libc's
// for shared libraries (civetweb included) and raises such requests to a
// floor; larger requests pass through unchanged.
extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t stacksize) {
  using Fn = int (*)(pthread_attr_t*, size_t);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  constexpr size_t kFloor = size_t{2} << 20;
  return real(attr, stacksize < kFloor ? kFloor : stacksize);
}

namespace bpo {
namespace {

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
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
  }
  return "Status";
}

// civetweb only says "Failed to setup server ports"; binding a probe socket
// tells why (address in use, not local, permission).
std::string WhyCannotBind(const Endpoint& ep) {
  addrinfo hints = {};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res);
      rc != 0) {
    return gai_strerror(rc);
  }
  std::string why;
  const int fd = socket(res->ai_family, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
    why = std::strerror(errno);
  } else if (listen(fd, 1) != 0) {
    why = std::strerror(errno);
  }
  close(fd);
  freeaddrinfo(res);
  return why;
}

void Send(mg_connection* conn, const HttpResponse& r) {
  std::string head = absl::StrCat(
      "HTTP/1.1 ", r.status, " ", StatusText(r.status), "\r\nContent-Type: ", r.content_type,
      "\r\nContent-Length: ", r.body.size(), "\r\nCache-Control: no-store\r\n");
  for (const auto& [k, v] : r.headers) absl::StrAppend(&head, k, ": ", v, "\r\n");
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  if (!r.body.empty()) mg_write(conn, r.body.data(), r.body.size());
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options) {
  auto endpoint = ParseEndpoint(options.address);
  if (!endpoint.ok()) return endpoint.status();
  if (options.num_threads < 1 || options.connection_queue < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP server: num_threads and connection_queue must be >= 1, got ",
                     options.num_threads, " and ", options.connection_queue));
  }
  const int64_t timeout_ms = absl::ToInt64Milliseconds(options.request_timeout);
  if (timeout_ms < 1 || timeout_ms > 3600 * 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP server: request_timeout must be in [1ms, 1h], got ",
                     absl::FormatDuration(options.request_timeout)));
  }
  static std::once_flag init_once;
  std::call_once(init_once, [] { mg_init_library(0); });

  std::unique_ptr<HttpServer> server(new HttpServer());
  server->max_body_bytes_ = options.max_body_bytes;
  const std::string ports = endpoint->ToString();
  const std::string threads = absl::StrCat(options.num_threads);
  const std::string queue = absl::StrCat(options.connection_queue);
  const std::string timeout = absl::StrCat(timeout_ms);
  // civetweb's request_timeout_ms (default 30 s) also bounds the wait for the
  // first byte of a new connection: it is what frees a worker from an idle
  // client.
  const char* config[] = {"listening_ports",
                          ports.c_str(),
                          "num_threads",
                          threads.c_str(),
                          "connection_queue",
                          queue.c_str(),
                          "request_timeout_ms",
                          timeout.c_str(),
                          "enable_keep_alive",
                          "no",
                          "enable_directory_listing",
                          "no",
                          nullptr};
  mg_callbacks callbacks = {};
  // civetweb prints startup problems itself unless a logger is installed; the
  // error text comes back through mg_error_data instead.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  mg_init_data init = {};
  init.callbacks = &callbacks;
  init.configuration_options = config;
  char error_text[256] = {0};
  unsigned error_code = 0;
  mg_error_data error = {};
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  server->ctx_ = mg_start2(&init, &error);
  if (server->ctx_ == nullptr) {
    const std::string why = WhyCannotBind(*endpoint);
    const std::string detail = error_text[0] ? error_text : "start failed";
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", ports, ": ",
                     why.empty() ? detail : absl::StrCat(why, " (", detail, ")")));
  }
  mg_server_port bound[4] = {};
  const int n = mg_get_server_ports(server->ctx_, 4, bound);
  server->port_ = n > 0 ? bound[0].port : endpoint->port;
  Endpoint actual = *endpoint;
  actual.port = server->port_;
  server->address_ = actual.ToString();
  return server;
}

HttpServer::~HttpServer() {
  if (ctx_ != nullptr) mg_stop(ctx_);
}

void HttpServer::Handle(const std::string& path, Handler handler) {
  auto& route = routes_[path];
  route = std::make_unique<Route>(Route{this, std::move(handler)});
  mg_set_request_handler(ctx_, path.c_str(), &HttpServer::Dispatch, route.get());
}

int HttpServer::Dispatch(mg_connection* conn, void* cbdata) {
  const Route& route = *static_cast<Route*>(cbdata);
  const size_t max_body = route.server->max_body_bytes_;
  const mg_request_info* info = mg_get_request_info(conn);
  HttpRequest req;
  req.method = info->request_method ? info->request_method : "";
  req.path = info->local_uri ? info->local_uri : "";
  req.query = info->query_string ? info->query_string : "";
  req.remote_address = info->remote_addr;
  for (int i = 0; i < info->num_headers; ++i) {
    const mg_header& h = info->http_headers[i];
    if (h.name == nullptr || h.value == nullptr) continue;
    auto [it, fresh] = req.headers.emplace(absl::AsciiStrToLower(h.name), h.value);
    if (!fresh) absl::StrAppend(&it->second, ", ", h.value);
  }
  const long long length = info->content_length;
  if (length > static_cast<long long>(max_body)) {
    Send(conn, HttpResponse{413, "text/plain; charset=utf-8", "request body too large\n", {}});
    return 413;
  }
  char buf[8192];
  int got;
  while ((got = mg_read(conn, buf, sizeof(buf))) > 0) {
    req.body.append(buf, got);
    if (req.body.size() > max_body) {
      Send(conn, HttpResponse{413, "text/plain; charset=utf-8", "request body too large\n", {}});
      return 413;
    }
  }
  HttpResponse resp;
  try {
    resp = route.handler(req);
  } catch (const std::exception& e) {
    resp =
        HttpResponse{500, "text/plain; charset=utf-8", absl::StrCat("error: ", e.what(), "\n"), {}};
  }
  Send(conn, resp);
  return resp.status;
}

void ServeMetrics(const metrics::Registry* registry, HttpServer* server) {
  server->Handle("/metrics", [registry](const HttpRequest& req) {
    if (req.method != "GET" && req.method != "HEAD") {
      return HttpResponse{405, "text/plain; charset=utf-8", "use GET\n", {{"Allow", "GET"}}};
    }
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", registry->Render(), {}};
  });
}

}  // namespace bpo
