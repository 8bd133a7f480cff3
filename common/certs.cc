#include "common/certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;

struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct KeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

absl::Status OpenSslError(absl::string_view what) {
  char buf[256] = {0};
  ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
  return absl::InternalError(absl::StrCat(what, ": ", buf));
}

absl::StatusOr<X509Ptr> ParseCertificate(const std::string& pem, absl::string_view what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a PEM certificate"));
  }
  return cert;
}

absl::StatusOr<KeyPtr> ParseKey(const std::string& pem, absl::string_view what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) return absl::InvalidArgumentError(absl::StrCat(what, ": not a PEM key"));
  return key;
}

std::string ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string ToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// Writes `bytes` to `path` with `mode` (a key: 0600), replacing it atomically.
absl::Status WritePrivate(const std::string& path, const std::string& bytes, mode_t mode) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::PermissionDeniedError(absl::StrCat(tmp, ": cannot create: ", strerror(errno)));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::DataLossError(absl::StrCat(tmp, ": write failed: ", strerror(e)));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return absl::DataLossError(absl::StrCat(path, ": cannot write: ", strerror(e)));
  }
  return absl::OkStatus();
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return OpenSslError(absl::StrCat("certificate extension '", value, "'"));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError("X509_add_ext");
  return absl::OkStatus();
}

// A certificate for `public_key` with `subject` fields, valid from an hour ago
// (clock skew) for `days`, not yet signed.
absl::StatusOr<X509Ptr> NewCertificate(
    EVP_PKEY* public_key, const std::vector<std::pair<const char*, std::string>>& subject,
    int days) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return OpenSslError("RAND_bytes");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& [field, value] : subject) {
    if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                   0) != 1) {
      return OpenSslError(absl::StrCat("subject ", field, "=", value));
    }
  }
  X509_set_pubkey(cert.get(), public_key);
  return cert;
}

absl::StatusOr<std::pair<X509Ptr, KeyPtr>> LoadAuthority(const std::string& dir) {
  const std::string ca_path = absl::StrCat(dir, "/ca.pem");
  const std::string key_path = absl::StrCat(dir, "/ca.key");
  absl::StatusOr<std::string> ca_pem = ReadWholeFile(ca_path);
  if (!ca_pem.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no certificate authority in ", dir, " (", ca_path,
                     " cannot be read): create one with `bpo certs init --dir ", dir, "`"));
  }
  BPO_ASSIGN_OR_RETURN(std::string key_pem, ReadWholeFile(key_path));
  BPO_ASSIGN_OR_RETURN(X509Ptr ca, ParseCertificate(*ca_pem, ca_path));
  BPO_ASSIGN_OR_RETURN(KeyPtr key, ParseKey(key_pem, key_path));
  if (X509_check_private_key(ca.get(), key.get()) != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(key_path, " is not the private key of ", ca_path));
  }
  return std::make_pair(std::move(ca), std::move(key));
}

std::string SubjectAltNames(const Identity& id, const std::vector<std::string>& hosts) {
  std::string san =
      absl::StrCat("DNS:", RoleName(id.role), ".bpo,DNS:bpo,DNS:localhost,", "IP:127.0.0.1,IP:::1");
  for (const std::string& h : hosts) {
    unsigned char buf[16];
    const bool ip =
        inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
    absl::StrAppend(&san, ip ? ",IP:" : ",DNS:", h);
  }
  return san;
}

bool ValidHost(const std::string& h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' &&
        c != '*') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status CreateCertificateAuthority(const std::string& dir, const std::string& run_id,
                                        int valid_days) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": ", ec.message()));
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  const std::string ca_path = absl::StrCat(dir, "/ca.pem");
  if (fs::exists(ca_path, ec)) {
    return absl::AlreadyExistsError(
        absl::StrCat(ca_path, " exists: a directory holds one certificate authority"));
  }
  KeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("EC key generation");
  BPO_ASSIGN_OR_RETURN(
      X509Ptr ca,
      NewCertificate(key.get(),
                     {{"O", "bpo"}, {"CN", absl::StrCat("bpo run CA ", run_id).substr(0, 64)}},
                     valid_days));
  X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get()));
  BPO_RETURN_IF_ERROR(
      AddExtension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  BPO_RETURN_IF_ERROR(
      AddExtension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  BPO_RETURN_IF_ERROR(AddExtension(ca.get(), ca.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(ca.get(), key.get(), EVP_sha256()) == 0) return OpenSslError("signing the CA");
  BPO_RETURN_IF_ERROR(WritePrivate(absl::StrCat(dir, "/ca.key"), ToPem(key.get()), 0600));
  return WritePrivate(ca_path, ToPem(ca.get()), 0644);
}

absl::Status IssueCertificate(const std::string& dir, const Identity& identity,
                              const CertificateOptions& options) {
  if (identity.role == Role::kPlaintext || !IsValidIdentityName(identity.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot issue a certificate for '", absl::CHexEscape(identity.ToString()),
                     "': names are 1-48 characters of [A-Za-z0-9._@-]"));
  }
  for (const std::string& h : options.hosts) {
    if (!ValidHost(h)) {
      return absl::InvalidArgumentError(
          absl::StrCat("host '", absl::CHexEscape(h), "' is not a host name or IP address"));
    }
  }
  if (options.valid_days < 1 || options.valid_days > 36500) {
    return absl::InvalidArgumentError(
        absl::StrCat("valid_days must be in [1, 36500], got ", options.valid_days));
  }
  BPO_ASSIGN_OR_RETURN(auto authority, LoadAuthority(dir));
  X509* ca = authority.first.get();
  KeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("EC key generation");
  BPO_ASSIGN_OR_RETURN(
      X509Ptr cert,
      NewCertificate(key.get(), {{"O", "bpo"}, {"CN", identity.ToString()}}, options.valid_days));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca));
  BPO_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_basic_constraints, "critical,CA:FALSE"));
  BPO_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_key_usage, "critical,digitalSignature"));
  BPO_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_ext_key_usage, "serverAuth,clientAuth"));
  BPO_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_authority_key_identifier, "keyid"));
  BPO_RETURN_IF_ERROR(
      AddExtension(cert.get(), ca, NID_subject_alt_name, SubjectAltNames(identity, options.hosts)));
  if (X509_sign(cert.get(), authority.second.get(), EVP_sha256()) == 0) {
    return OpenSslError("signing the certificate");
  }
  const std::string base = absl::StrCat(dir, "/", identity.name);
  BPO_RETURN_IF_ERROR(WritePrivate(base + ".key", ToPem(key.get()), 0600));
  return WritePrivate(base + ".pem", ToPem(cert.get()), 0644);
}

absl::Status EnsureCertificates(const std::string& dir, const std::string& run_id,
                                const std::vector<Identity>& identities) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": ", ec.message()));
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  // Two launchers of one run (or two tests sharing a directory) must not
  // each create a CA: the directory is theirs one at a time.
  const std::string lock_path = absl::StrCat(dir, "/.lock");
  const int lock = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) {
    return absl::PermissionDeniedError(absl::StrCat(lock_path, ": ", strerror(errno)));
  }
  struct Unlock {
    int fd;
    ~Unlock() { close(fd); }  // closing releases the lock
  } unlock{lock};
  if (flock(lock, LOCK_EX) != 0) {
    return absl::InternalError(absl::StrCat(lock_path, ": flock: ", strerror(errno)));
  }
  if (!fs::exists(absl::StrCat(dir, "/ca.pem"), ec)) {
    BPO_RETURN_IF_ERROR(CreateCertificateAuthority(dir, run_id));
  }
  BPO_ASSIGN_OR_RETURN(std::string ca_pem, ReadWholeFile(absl::StrCat(dir, "/ca.pem")));
  for (const Identity& id : identities) {
    const std::string base = absl::StrCat(dir, "/", id.name);
    absl::StatusOr<std::string> cert = ReadWholeFile(base + ".pem");
    absl::StatusOr<std::string> key = ReadWholeFile(base + ".key");
    bool fresh = cert.ok() && key.ok() && CheckCertificate(ca_pem, *cert, *key).ok();
    if (fresh) {
      absl::StatusOr<Identity> has = CertificateIdentity(*cert);
      fresh = has.ok() && has->ToString() == id.ToString();
      BPO_ASSIGN_OR_RETURN(X509Ptr x, ParseCertificate(*cert, base + ".pem"));
      time_t in_a_day = time(nullptr) + 86400;
      fresh = fresh && X509_cmp_time(X509_get0_notAfter(x.get()), &in_a_day) > 0;
    }
    if (!fresh) BPO_RETURN_IF_ERROR(IssueCertificate(dir, id));
  }
  return absl::OkStatus();
}

absl::StatusOr<Identity> CertificateIdentity(const std::string& cert_pem) {
  BPO_ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificate(cert_pem, "certificate"));
  char cn[256] = {0};
  const int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn));
  if (n <= 0) return absl::InvalidArgumentError("certificate: no subject common name");
  return ParseIdentity(absl::string_view(cn, static_cast<size_t>(n)));
}

absl::Status CheckCertificate(const std::string& ca_pem, const std::string& cert_pem,
                              const std::string& key_pem) {
  BPO_ASSIGN_OR_RETURN(X509Ptr ca, ParseCertificate(ca_pem, "CA certificate"));
  BPO_ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificate(cert_pem, "certificate"));
  if (!key_pem.empty()) {
    BPO_ASSIGN_OR_RETURN(KeyPtr key, ParseKey(key_pem, "key"));
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
      return absl::FailedPreconditionError("the key is not the certificate's private key");
    }
  }
  EVP_PKEY* ca_key = X509_get0_pubkey(ca.get());
  if (ca_key == nullptr || X509_verify(cert.get(), ca_key) != 1) {
    return absl::FailedPreconditionError("the certificate is not signed by the CA");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) <= 0) {
    return absl::FailedPreconditionError("the certificate has expired");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) >= 0) {
    return absl::FailedPreconditionError("the certificate is not valid yet");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CreateBearerToken(const std::string& tokens_file,
                                              const Identity& identity) {
  if (identity.role == Role::kPlaintext || !IsValidIdentityName(identity.name)) {
    return absl::InvalidArgumentError("tokens: invalid identity");
  }
  std::string existing;
  if (absl::StatusOr<std::string> read = ReadWholeFile(tokens_file); read.ok()) existing = *read;
  for (absl::string_view line : absl::StrSplit(existing, '\n')) {
    if (absl::StartsWith(line, absl::StrCat(identity.ToString(), " "))) {
      return absl::AlreadyExistsError(absl::StrCat(tokens_file, " already has a token for ",
                                                   identity.ToString(),
                                                   ": remove its line first to replace it"));
    }
  }
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return OpenSslError("RAND_bytes");
  const std::string token =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(raw), sizeof(raw)));
  if (!existing.empty() && existing.back() != '\n') existing += '\n';
  absl::StrAppend(&existing, identity.ToString(), " sha256:", Sha256Hex(token), "\n");
  BPO_RETURN_IF_ERROR(WritePrivate(tokens_file, existing, 0600));
  return token;
}

}  // namespace bpo
