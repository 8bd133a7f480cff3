#include "annotator/human_login.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace bpo::annotator {

absl::Status ValidateLoginLimits(const LoginLimits& limits) {
  if (limits.rater_failures_max < 1 || limits.address_failures_max < 1 ||
      limits.attempts_per_second_max < 1 || limits.window <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("login limits: rater_failures_max (", limits.rater_failures_max,
                     "), address_failures_max (", limits.address_failures_max,
                     "), attempts_per_second_max (", limits.attempts_per_second_max,
                     ") and window (", absl::FormatDuration(limits.window), ") must be positive"));
  }
  return absl::OkStatus();
}

absl::Duration LoginLimiter::Admit(const std::string& rater, bool known, const std::string& address,
                                   absl::Time now) {
  absl::MutexLock lock(&mu_);
  Sweep(now);
  absl::Time until = now;
  if (known) {
    auto it = raters_.find(rater);
    if (it != raters_.end()) until = std::max(until, it->second.locked_until);
  }
  auto it = addresses_.find(address);
  if (it != addresses_.end()) until = std::max(until, it->second.locked_until);
  if (until > now) return until - now;

  const int64_t second = absl::ToInt64Seconds(now - absl::UnixEpoch());
  if (second != second_) {
    second_ = second;
    attempts_ = 0;
  }
  if (attempts_ >= limits_.attempts_per_second_max) {
    return absl::UnixEpoch() + absl::Seconds(second + 1) - now;
  }
  ++attempts_;
  return absl::ZeroDuration();
}

bool LoginLimiter::Count(Record* record, int max, absl::Time now) {
  while (!record->failures.empty() && record->failures.front() <= now - limits_.window) {
    record->failures.pop_front();
  }
  record->failures.push_back(now);
  if (static_cast<int>(record->failures.size()) < max) return false;
  record->locked_until = now + limits_.window;
  record->failures.clear();
  return true;
}

bool LoginLimiter::Failed(const std::string& rater, bool known, const std::string& address,
                          absl::Time now) {
  absl::MutexLock lock(&mu_);
  bool locked = Count(&addresses_[address], limits_.address_failures_max, now);
  if (known) locked |= Count(&raters_[rater], limits_.rater_failures_max, now);
  return locked;
}

void LoginLimiter::Succeeded(const std::string& rater) {
  absl::MutexLock lock(&mu_);
  auto it = raters_.find(rater);
  if (it != raters_.end()) it->second.failures.clear();
}

void LoginLimiter::Sweep(absl::Time now) {
  if (now < next_sweep_) return;
  next_sweep_ = now + limits_.window;
  for (auto it = addresses_.begin(); it != addresses_.end();) {
    const Record& r = it->second;
    const bool stale =
        r.locked_until <= now && (r.failures.empty() || r.failures.back() <= now - limits_.window);
    it = stale ? addresses_.erase(it) : std::next(it);
  }
}

}  // namespace bpo::annotator
