// Who is calling: the role and name that a certificate of the run's CA (its
// subject common name, "<role>:<name>") or a bearer token carries, and what
// each role may do (docs/security.md).
#ifndef BPO_COMMON_IDENTITY_H_
#define BPO_COMMON_IDENTITY_H_

#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bpo {

enum class Role {
  kCoordinator,
  kLearner,    // reports snapshots, commits steps; serves snapshots
  kActor,      // leases prompts, submits pairs; fetches snapshots
  kAnnotator,  // leases and labels pairs (reward model or human service)
  kObserver,   // reads run status and /metrics (the launcher, Prometheus)
  // A peer of a plaintext transport (security.plaintext): not authenticated,
  // and trusted with everything, which the config allows only on loopback.
  kPlaintext,
};

// "coordinator", "learner", ... ("plaintext" for kPlaintext).
const char* RoleName(Role role);
// The inverse of RoleName for the five certificate roles; INVALID_ARGUMENT
// lists them otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view text);

struct Identity {
  Role role = Role::kObserver;
  std::string name;
  // "<role>:<name>", as in certificates, tokens files and the store.
  std::string ToString() const;
};

// Parses "<role>:<name>"; INVALID_ARGUMENT says what is wrong.
absl::StatusOr<Identity> ParseIdentity(absl::string_view text);

// 1-48 characters of [A-Za-z0-9._@-] (fits a certificate's common name with
// its role, and a file name).
bool IsValidIdentityName(absl::string_view name);

// OK when the caller has one of `allowed` roles (a plaintext peer always
// has); PERMISSION_DENIED naming `what`, the roles and the caller otherwise.
absl::Status RequireRole(const Identity& caller, std::initializer_list<Role> allowed,
                         absl::string_view what);

}  // namespace bpo

#endif  // BPO_COMMON_IDENTITY_H_
