// bpo certs init | issue | token: the run's certificate authority, one
// certificate per process, and bearer tokens for services that cannot hold
// a certificate (docs/security.md).
#include <iostream>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "common/certs.h"
#include "common/config.h"
#include "common/identity.h"
#include "common/transport.h"

ABSL_FLAG(std::string, dir, "",
          "Certificates directory; empty: security.dir of --config, else "
          "<output_dir>/<run_id>/certs.");
ABSL_FLAG(std::string, role, "", "coordinator, learner, actor, annotator or observer.");
ABSL_FLAG(std::string, cert_name, "",
          "The process's name (its worker name; learner ranks are learner-<rank>).");
ABSL_FLAG(std::string, hosts, "",
          "Extra host names or IP addresses the certificate is valid for, comma-separated.");
ABSL_FLAG(int32_t, days, 365, "Days the certificate is valid.");
ABSL_FLAG(std::string, tokens_file, "",
          "Tokens file to append to; empty: security.tokens_file of --config.");

namespace bpo::cli {
namespace {

absl::StatusOr<bpo::v1::RunConfig> RunConfigFromFlag() {
  const std::string path = absl::GetFlag(FLAGS_config);
  ConfigOptions options;
  options.check_files = false;
  absl::StatusOr<RunConfigFile> file =
      path.empty() ? DefaultRunConfig() : LoadRunConfig(path, options);
  if (!file.ok()) return file.status();
  return file->config;
}

absl::StatusOr<std::string> DirFromFlags() {
  if (!absl::GetFlag(FLAGS_dir).empty()) return absl::GetFlag(FLAGS_dir);
  absl::StatusOr<bpo::v1::RunConfig> config = RunConfigFromFlag();
  if (!config.ok()) return config.status();
  return CertificateDir(*config);
}

absl::StatusOr<Identity> IdentityFromFlags() {
  absl::StatusOr<Role> role = ParseRole(absl::GetFlag(FLAGS_role));
  if (!role.ok())
    return absl::InvalidArgumentError(absl::StrCat("--role: ", role.status().message()));
  Identity id{*role, absl::GetFlag(FLAGS_cert_name)};
  if (!IsValidIdentityName(id.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cert_name '", id.name, "': 1-48 characters of [A-Za-z0-9._@-]"));
  }
  return id;
}

int RunInit(const std::vector<std::string>&) {
  absl::StatusOr<std::string> dir = DirFromFlags();
  if (!dir.ok()) return Fail("certs init", dir.status());
  absl::StatusOr<bpo::v1::RunConfig> config = RunConfigFromFlag();
  if (!config.ok()) return Fail("certs init", config.status());
  if (absl::Status s = CreateCertificateAuthority(*dir, config->run_id()); !s.ok()) {
    return Fail("certs init", s);
  }
  std::cout << "certificate authority: " << *dir << "/ca.pem (key " << *dir
            << "/ca.key: keep it private; whoever holds it can join the run)\n";
  return kExitOk;
}

int RunIssue(const std::vector<std::string>&) {
  absl::StatusOr<std::string> dir = DirFromFlags();
  if (!dir.ok()) return Fail("certs issue", dir.status());
  absl::StatusOr<Identity> id = IdentityFromFlags();
  if (!id.ok()) return Fail("certs issue", id.status());
  CertificateOptions options;
  options.valid_days = absl::GetFlag(FLAGS_days);
  options.hosts = absl::StrSplit(absl::GetFlag(FLAGS_hosts), ',', absl::SkipEmpty());
  if (absl::Status s = IssueCertificate(*dir, *id, options); !s.ok()) {
    return Fail("certs issue", s);
  }
  std::cout << "issued " << id->ToString() << ": " << *dir << "/" << id->name << ".pem and " << *dir
            << "/" << id->name << ".key, valid " << options.valid_days << " days\n";
  return kExitOk;
}

int RunToken(const std::vector<std::string>&) {
  std::string path = absl::GetFlag(FLAGS_tokens_file);
  if (path.empty()) {
    absl::StatusOr<bpo::v1::RunConfig> config = RunConfigFromFlag();
    if (!config.ok()) return Fail("certs token", config.status());
    path = config->security().tokens_file();
  }
  if (path.empty()) {
    return Fail("certs token",
                absl::InvalidArgumentError("no tokens file: pass --tokens_file or a --config "
                                           "with security.tokens_file"));
  }
  absl::StatusOr<Identity> id = IdentityFromFlags();
  if (!id.ok()) return Fail("certs token", id.status());
  absl::StatusOr<std::string> token = CreateBearerToken(path, *id);
  if (!token.ok()) return Fail("certs token", token.status());
  // The token is shown once, here, and stored only as its sha256.
  std::cerr << "bearer token for " << id->ToString() << " (its sha256 is in " << path
            << "; the token itself is stored nowhere):\n";
  std::cout << *token << "\n";
  return kExitOk;
}

}  // namespace

const Command& CertsInitCommand() {
  static const Command kCommand{"certs init",
                                "Create the run's certificate authority (ca.pem, ca.key).",
                                "bpo certs init [--dir DIR | --config FILE]",
                                __FILE__,
                                0,
                                0,
                                &RunInit,
                                {"dir"},
                                {"config"}};
  return kCommand;
}

const Command& CertsIssueCommand() {
  static const Command kCommand{
      "certs issue",
      "Issue a process's certificate (<name>.pem, <name>.key) from the run's CA.",
      "bpo certs issue --role ROLE --cert_name NAME [--hosts H1,H2] [--days N] [--dir DIR | "
      "--config FILE]",
      __FILE__,
      0,
      0,
      &RunIssue,
      {"dir", "role", "cert_name", "hosts", "days"},
      {"config"}};
  return kCommand;
}

const Command& CertsTokenCommand() {
  static const Command kCommand{
      "certs token",
      "Create a bearer token for a service without a certificate; prints it once.",
      "bpo certs token --role ROLE --cert_name NAME [--tokens_file FILE | --config FILE]",
      __FILE__,
      0,
      0,
      &RunToken,
      {"tokens_file", "role", "cert_name"},
      {"config"}};
  return kCommand;
}

}  // namespace bpo::cli
