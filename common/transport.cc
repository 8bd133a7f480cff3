#include "common/transport.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/certs.h"
#include "common/config.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace bpo {

TransportSecurity TransportSecurity::Plaintext() {
  TransportSecurity t;
  t.plaintext = true;
  return t;
}

std::string TransportSecurity::Describe() const {
  if (plaintext) return "plaintext (security.plaintext: nobody authenticated)";
  if (identity.has_value()) return absl::StrCat("mTLS as ", identity->ToString());
  if (!bearer_token.empty()) return "TLS with a bearer token";
  return "TLS without a client identity";
}

absl::StatusOr<std::string> CertificateDir(const bpo::v1::RunConfig& config) {
  if (!config.security().dir().empty()) return config.security().dir();
  return RunPath(config, "certs");
}

absl::StatusOr<TransportSecurity> LoadTransport(const bpo::v1::RunConfig& config,
                                                absl::string_view name,
                                                const TransportFiles& files) {
  const bpo::v1::SecurityConfig& sec = config.security();
  if (sec.plaintext()) return TransportSecurity::Plaintext();
  BPO_ASSIGN_OR_RETURN(const std::string dir, CertificateDir(config));
  auto pick = [&](const std::string& flag, const std::string& configured, absl::string_view file) {
    if (!flag.empty()) return flag;
    if (!configured.empty()) return configured;
    return absl::StrCat(dir, "/", file);
  };
  const std::string ca_path = pick(files.ca, sec.ca(), "ca.pem");
  const std::string cert_path = pick(files.cert, sec.cert(), absl::StrCat(name, ".pem"));
  const std::string key_path = pick(files.key, sec.key(), absl::StrCat(name, ".key"));
  const std::string how = absl::StrCat(
      "create the run's certificates with `bpo certs init --dir ", dir,
      "` and `bpo certs issue --dir ", dir, " --role <role> --name ", name,
      "` (`bpo local` does this itself), or set security.plaintext: true for a loopback-only run");
  TransportSecurity t;
  t.metrics_client_certs = sec.metrics_client_certs();
  for (auto [path, out] : {std::pair{&ca_path, &t.ca_pem}, std::pair{&cert_path, &t.cert_pem},
                           std::pair{&key_path, &t.key_pem}}) {
    absl::StatusOr<std::string> read = ReadWholeFile(*path);
    if (!read.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("TLS: cannot read ", *path, " (", read.status().message(), "): ", how));
    }
    *out = std::move(*read);
  }
  if (absl::Status ok = CheckCertificate(t.ca_pem, t.cert_pem, t.key_pem); !ok.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("TLS: ", cert_path, " with ", key_path,
                                                      " and CA ", ca_path, ": ", ok.message(), "; ",
                                                      how));
  }
  absl::StatusOr<Identity> id = CertificateIdentity(t.cert_pem);
  if (!id.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "TLS: ", cert_path, ": ", id.status().message(),
        " (bpo certificates name \"<role>:<name>\"; issue one with `bpo certs issue`)"));
  }
  t.identity = *id;
  if (!sec.tokens_file().empty()) {
    BPO_ASSIGN_OR_RETURN(t.tokens, LoadTokens(sec.tokens_file()));
  }
  return t;
}

absl::StatusOr<std::map<std::string, Identity>> LoadTokens(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) {
    return absl::NotFoundError(
        absl::StrCat("security.tokens_file '", path, "': ", text.status().message()));
  }
  std::map<std::string, Identity> tokens;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": ", why,
                                                     " (expected \"<role>:<name> sha256:<hex>\", "
                                                     "as `bpo certs token` writes)"));
    };
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (parts.size() != 2) return bad("two fields expected");
    absl::StatusOr<Identity> id = ParseIdentity(parts[0]);
    if (!id.ok()) return bad(id.status().message());
    absl::string_view hash = parts[1];
    if (!absl::ConsumePrefix(&hash, "sha256:") || hash.size() != 64) {
      return bad("the token must be stored as sha256:<64 hex digits>, never in clear");
    }
    for (char c : hash) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return bad("not hex");
    }
    const std::string key = absl::AsciiStrToLower(hash);
    if (!tokens.emplace(key, *id).second) return bad("duplicate token");
  }
  return tokens;
}

}  // namespace bpo
