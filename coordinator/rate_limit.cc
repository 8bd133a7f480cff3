#include "coordinator/rate_limit.h"

#include <algorithm>

namespace bpo::coordinator {

bool RateLimiter::Admit(const std::string& key) {
  if (per_second_ <= 0) return true;
  const absl::Time now = now_();
  absl::MutexLock lock(&mu_);
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(burst_, b.tokens + absl::ToDoubleSeconds(now - b.last) * per_second_);
    b.last = now;
  }
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

}  // namespace bpo::coordinator
