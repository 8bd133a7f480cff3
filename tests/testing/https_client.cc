#include "tests/testing/https_client.h"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace bpo::testing {
namespace {

std::string SslError() {
  char buf[256] = {0};
  ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
  return buf;
}

}  // namespace

absl::StatusOr<HttpsResult> HttpsGet(const std::string& host, int port, const std::string& target,
                                     const TransportSecurity& client,
                                     const std::string& server_name, absl::Duration timeout) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        &SSL_CTX_free);
  BIO* ca_bio = BIO_new_mem_buf(client.ca_pem.data(), static_cast<int>(client.ca_pem.size()));
  X509* ca = PEM_read_bio_X509(ca_bio, nullptr, nullptr, nullptr);
  BIO_free(ca_bio);
  if (ca == nullptr) return absl::InvalidArgumentError("HttpsGet: no CA certificate");
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca);
  X509_free(ca);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (!client.cert_pem.empty()) {
    BIO* cb = BIO_new_mem_buf(client.cert_pem.data(), static_cast<int>(client.cert_pem.size()));
    X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO_free(cb);
    BIO* kb = BIO_new_mem_buf(client.key_pem.data(), static_cast<int>(client.key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    BIO_free(kb);
    const bool ok = cert != nullptr && key != nullptr &&
                    SSL_CTX_use_certificate(ctx.get(), cert) == 1 &&
                    SSL_CTX_use_PrivateKey(ctx.get(), key) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ok) return absl::InvalidArgumentError("HttpsGet: bad client certificate or key");
  }

  addrinfo hints = {};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), absl::StrCat(port).c_str(), &hints, &res); rc != 0) {
    return absl::UnavailableError(absl::StrCat("resolve ", host, ": ", gai_strerror(rc)));
  }
  const int fd = socket(res->ai_family, SOCK_STREAM, 0);
  timeval tv{};
  tv.tv_sec = absl::ToInt64Seconds(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  const int connected = connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (connected != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect ", host, ":", port, " failed"));
  }
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
  SSL_set_fd(ssl.get(), fd);
  SSL_set_tlsext_host_name(ssl.get(), server_name.c_str());
  SSL_set1_host(ssl.get(), server_name.c_str());
  if (SSL_connect(ssl.get()) != 1) {
    const std::string why = SslError();
    close(fd);
    return absl::UnavailableError(absl::StrCat("TLS handshake with ", host, ":", port, ": ", why));
  }
  const std::string request = absl::StrCat("GET ", target, " HTTP/1.0\r\nHost: ", host, ":", port,
                                           "\r\nConnection: close\r\n\r\n");
  if (SSL_write(ssl.get(), request.data(), static_cast<int>(request.size())) <= 0) {
    const std::string why = SslError();
    close(fd);
    return absl::UnavailableError(absl::StrCat("TLS write: ", why));
  }
  std::string raw;
  char buf[16384];
  int n;
  while ((n = SSL_read(ssl.get(), buf, sizeof(buf))) > 0) raw.append(buf, n);
  SSL_shutdown(ssl.get());
  close(fd);
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return absl::UnavailableError(absl::StrCat("no HTTP response over TLS (", SslError(), ")"));
  }
  HttpsResult result;
  const size_t sp = raw.find(' ');
  if (sp == std::string::npos || !absl::SimpleAtoi(raw.substr(sp + 1, 3), &result.status)) {
    return absl::DataLossError("bad status line");
  }
  result.body = raw.substr(head_end + 4);
  return result;
}

}  // namespace bpo::testing
