// Per-identity call budgets at the coordinator: one token bucket per
// authenticated identity (keys are bounded by the certificates and tokens the
// run issued).
#ifndef BPO_COORDINATOR_RATE_LIMIT_H_
#define BPO_COORDINATOR_RATE_LIMIT_H_

#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace bpo::coordinator {

class RateLimiter {
 public:
  // `per_second` tokens a second, at most `burst` saved; per_second <= 0
  // admits everything. `now` is the clock (tests pass their own).
  RateLimiter(double per_second, double burst, std::function<absl::Time()> now = &absl::Now)
      : per_second_(per_second), burst_(burst), now_(std::move(now)) {}

  // True when `key` may make one more call now (it spends a token).
  bool Admit(const std::string& key);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time last;
  };
  const double per_second_;
  const double burst_;
  const std::function<absl::Time()> now_;
  absl::Mutex mu_;
  std::map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bpo::coordinator

#endif  // BPO_COORDINATOR_RATE_LIMIT_H_
