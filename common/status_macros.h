// Status propagation macros in the shape of Abseil's internal ones (Debian's
// Abseil 20220623 ships none).
//
//   BPO_RETURN_IF_ERROR(WriteFile(path));
//   BPO_ASSIGN_OR_RETURN(Config config, LoadConfig(path));
#ifndef BPO_COMMON_STATUS_MACROS_H_
#define BPO_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define BPO_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status bpo_status_ = (expr);       \
    if (!bpo_status_.ok()) return bpo_status_; \
  } while (0)

#define BPO_STATUS_CONCAT_INNER_(a, b) a##b
#define BPO_STATUS_CONCAT_(a, b) BPO_STATUS_CONCAT_INNER_(a, b)

#define BPO_ASSIGN_OR_RETURN(lhs, expr) \
  BPO_ASSIGN_OR_RETURN_IMPL_(BPO_STATUS_CONCAT_(bpo_statusor_, __LINE__), lhs, expr)

#define BPO_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)    \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // BPO_COMMON_STATUS_MACROS_H_
