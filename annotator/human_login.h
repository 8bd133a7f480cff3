// Sign-in limits of the human-annotation page: failed attempts lock out a
// rater name and a client address for a while, and all attempts together
// are capped per second (each one costs a PBKDF2 hash, see human_tokens.h).
//
// Thread-safe. Time comes from the caller, so tests drive it.
#ifndef BPO_ANNOTATOR_HUMAN_LOGIN_H_
#define BPO_ANNOTATOR_HUMAN_LOGIN_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bpo::annotator {

struct LoginLimits {
  // This many failed sign-ins as one rater within `window` lock that rater
  // out for `window` (a correct secret is refused too until it passes).
  int rater_failures_max = 5;
  // The same for one client address, whatever names it tries.
  int address_failures_max = 20;
  absl::Duration window = absl::Minutes(15);
  // Sign-in attempts admitted per second, all raters and addresses together.
  int attempts_per_second_max = 10;
};

// INVALID_ARGUMENT unless every limit is positive.
absl::Status ValidateLoginLimits(const LoginLimits& limits);

class LoginLimiter {
 public:
  explicit LoginLimiter(LoginLimits limits) : limits_(limits) {}

  // Zero when an attempt to sign in as `rater` from `address` may check its
  // secret now (it then counts toward the per-second cap); otherwise how
  // long until it may. `known` says whether the raters file names `rater`:
  // only known names are tracked, so unknown ones cost no memory.
  absl::Duration Admit(const std::string& rater, bool known, const std::string& address,
                       absl::Time now);
  // A wrong secret. True when this failure locks the rater or the address out.
  bool Failed(const std::string& rater, bool known, const std::string& address, absl::Time now);
  // A correct secret: the rater's earlier failures are forgotten.
  void Succeeded(const std::string& rater);

 private:
  struct Record {
    std::deque<absl::Time> failures;  // within the window, oldest first
    absl::Time locked_until = absl::InfinitePast();
  };
  // Records one failure; true when it starts a lockout.
  bool Count(Record* record, int max, absl::Time now);
  // Forgets addresses with neither a lockout nor a failure in the window.
  void Sweep(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LoginLimits limits_;
  absl::Mutex mu_;
  std::map<std::string, Record> raters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Record> addresses_ ABSL_GUARDED_BY(mu_);
  int64_t second_ ABSL_GUARDED_BY(mu_) = 0;  // of the attempts counted in attempts_
  int attempts_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_sweep_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace bpo::annotator

#endif  // BPO_ANNOTATOR_HUMAN_LOGIN_H_
