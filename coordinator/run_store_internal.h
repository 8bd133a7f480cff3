// Helpers shared by run_store.cc and run_store_work.cc: protobuf times and
// blobs, and the lease kinds stored in leases.kind.
#ifndef BPO_COORDINATOR_RUN_STORE_INTERNAL_H_
#define BPO_COORDINATOR_RUN_STORE_INTERNAL_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace bpo::coordinator::internal {

inline constexpr int kPromptLease = 1;
inline constexpr int kLabelLease = 2;

inline std::string Serialize(const google::protobuf::Message& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

inline google::protobuf::Timestamp ToTimestamp(int64_t micros) {
  google::protobuf::Timestamp t;
  t.set_seconds(micros / 1000000);
  t.set_nanos(static_cast<int32_t>((micros % 1000000) * 1000));
  return t;
}

inline void SetDuration(google::protobuf::Duration* d, absl::Duration v) {
  const int64_t ns = absl::ToInt64Nanoseconds(v);
  d->set_seconds(ns / 1000000000);
  d->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

inline int64_t DurationMicros(const google::protobuf::Duration& d) {
  return d.seconds() * 1000000 + d.nanos() / 1000;
}

}  // namespace bpo::coordinator::internal

#endif  // BPO_COORDINATOR_RUN_STORE_INTERNAL_H_
