// Small leveled logging to stderr, one line per message:
//   I20261130 11:27:14.123456 4711 config.cc:42] loaded configs/x.yaml
// BPO_LOG(INFO) << ...; levels DEBUG, INFO, WARNING, ERROR. Thread-safe: each
// message is written with one call. The minimum level is process-wide.
#ifndef BPO_COMMON_LOGGING_H_
#define BPO_COMMON_LOGGING_H_

#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bpo {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();
// "debug", "info", "warning" or "error".
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);

namespace logging_internal {

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Swallows the stream when the level is filtered out.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace logging_internal
}  // namespace bpo

#define BPO_LOG_LEVEL_DEBUG ::bpo::LogLevel::kDebug
#define BPO_LOG_LEVEL_INFO ::bpo::LogLevel::kInfo
#define BPO_LOG_LEVEL_WARNING ::bpo::LogLevel::kWarning
#define BPO_LOG_LEVEL_ERROR ::bpo::LogLevel::kError

#define BPO_LOG(level)                                                                     \
  (BPO_LOG_LEVEL_##level < ::bpo::MinLogLevel())                                           \
      ? (void)0                                                                            \
      : ::bpo::logging_internal::Voidify() &                                               \
            ::bpo::logging_internal::LogMessage(BPO_LOG_LEVEL_##level, __FILE__, __LINE__) \
                .stream()

#endif  // BPO_COMMON_LOGGING_H_
