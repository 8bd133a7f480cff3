// Standard process metrics, read from /proc at each scrape:
//   process_cpu_seconds_total, process_resident_memory_bytes,
//   process_virtual_memory_bytes, process_open_fds, process_start_time_seconds,
//   bpo_process_uptime_seconds, bpo_build_info{version, libtorch?...}.
#ifndef BPO_COMMON_PROCESS_METRICS_H_
#define BPO_COMMON_PROCESS_METRICS_H_

#include <memory>
#include <string>

#include "common/metrics.h"

namespace bpo::metrics {

struct ProcessSample {
  double cpu_seconds = 0;
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double open_fds = 0;
  double start_time_seconds = 0;  // Unix time
  double uptime_seconds = 0;
};

// Reads the calling process's numbers from /proc/self.
absl::StatusOr<ProcessSample> ReadProcessSample();

// A collector writing the families above; `component` labels bpo_build_info
// ("coordinator", "actor", ...).
std::unique_ptr<Collector> MakeProcessCollector(std::string component);

}  // namespace bpo::metrics

#endif  // BPO_COMMON_PROCESS_METRICS_H_
