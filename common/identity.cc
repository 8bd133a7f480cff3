#include "common/identity.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bpo {
namespace {

constexpr Role kCertificateRoles[] = {Role::kCoordinator, Role::kLearner, Role::kActor,
                                      Role::kAnnotator, Role::kObserver};

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kCoordinator:
      return "coordinator";
    case Role::kLearner:
      return "learner";
    case Role::kActor:
      return "actor";
    case Role::kAnnotator:
      return "annotator";
    case Role::kObserver:
      return "observer";
    case Role::kPlaintext:
      return "plaintext";
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view text) {
  std::vector<std::string> names;
  for (Role r : kCertificateRoles) {
    if (text == RoleName(r)) return r;
    names.push_back(RoleName(r));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown role '", absl::CHexEscape(text),
                                                 "' (one of ", absl::StrJoin(names, ", "), ")"));
}

std::string Identity::ToString() const { return absl::StrCat(RoleName(role), ":", name); }

bool IsValidIdentityName(absl::string_view name) {
  if (name.empty() || name.size() > 48) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '@' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

absl::StatusOr<Identity> ParseIdentity(absl::string_view text) {
  const size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity '", absl::CHexEscape(text), "': expected <role>:<name>"));
  }
  absl::StatusOr<Role> role = ParseRole(text.substr(0, colon));
  if (!role.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity '", absl::CHexEscape(text), "': ", role.status().message()));
  }
  Identity id{*role, std::string(text.substr(colon + 1))};
  if (!IsValidIdentityName(id.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity '", absl::CHexEscape(text),
                     "': the name must be 1-48 characters of [A-Za-z0-9._@-]"));
  }
  return id;
}

absl::Status RequireRole(const Identity& caller, std::initializer_list<Role> allowed,
                         absl::string_view what) {
  if (caller.role == Role::kPlaintext) return absl::OkStatus();
  std::vector<std::string> names;
  for (Role r : allowed) {
    if (caller.role == r) return absl::OkStatus();
    names.push_back(RoleName(r));
  }
  return absl::PermissionDeniedError(
      absl::StrCat(what, " is only for ", absl::StrJoin(names, " or "),
                   " identities; the caller is ", caller.ToString()));
}

}  // namespace bpo
