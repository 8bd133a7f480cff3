#include "common/http_server.h"

#include <civetweb.h>
#include <dlfcn.h>
#include <netdb.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/endpoint.h"
#include "common/status_macros.h"

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
  // MG_FEATURES_TLS (2): civetweb initializes OpenSSL for HTTPS ports.
  std::call_once(init_once, [] { mg_init_library(2); });

  std::unique_ptr<HttpServer> server(new HttpServer());
  server->max_body_bytes_ = options.max_body_bytes;
  server->tls_ = options.tls;
  if (options.tls.has_value() &&
      (options.tls->cert_pem.empty() || options.tls->key_pem.empty() ||
       (options.tls->require_client_cert && options.tls->ca_pem.empty()))) {
    return absl::InvalidArgumentError(
        "HTTPS server: a certificate, its key and (for client certificates) a CA are required");
  }
  // civetweb's "s" suffix makes a listening port HTTPS.
  const std::string ports = absl::StrCat(endpoint->ToString(), options.tls.has_value() ? "s" : "");
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
  if (options.tls.has_value()) callbacks.init_ssl = &HttpServer::InitTls;
  mg_init_data init = {};
  init.callbacks = &callbacks;
  init.user_data = server.get();
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
        absl::StrCat("cannot serve HTTP on ", endpoint->ToString(), ": ",
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

int HttpServer::InitTls(void* ssl_ctx, void* user_data) {
  const HttpTls& tls = *static_cast<HttpServer*>(user_data)->tls_;
  SSL_CTX* ctx = static_cast<SSL_CTX*>(ssl_ctx);
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
  if (!ok) return -1;
  if (tls.require_client_cert) {
    X509* ca = read_cert(tls.ca_pem);
    if (ca == nullptr || X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca) != 1) {
      X509_free(ca);
      return -1;
    }
    X509_free(ca);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return 1;  // configured: civetweb reads no certificate files
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

void ServeMetrics(const metrics::Registry* registry, HttpServer* server) {
  server->Handle("/metrics", [registry](const HttpRequest& req) {
    if (req.method != "GET" && req.method != "HEAD") {
      return HttpResponse{405, "text/plain; charset=utf-8", "use GET\n", {{"Allow", "GET"}}};
    }
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", registry->Render(), {}};
  });
}

}  // namespace bpo
