#include "common/process_metrics.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/version.h"

namespace bpo::metrics {
namespace {

absl::StatusOr<std::string> ReadSmallFile(const char* path) {
  std::ifstream in(path);
  if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value;
  while (in >> key) {
    if (key == "btime" && in >> value) return value;
  }
  return 0;
}

class ProcessCollector : public Collector {
 public:
  explicit ProcessCollector(std::string component) : component_(std::move(component)) {}

  void Collect(std::string* out) const override {
    auto sample = ReadProcessSample();
    if (!sample.ok()) return;  // a scrape never fails because /proc is odd
    Write(out, "process_cpu_seconds_total", "Total user and system CPU time in seconds.",
          MetricType::kCounter, sample->cpu_seconds);
    Write(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
          MetricType::kGauge, sample->resident_bytes);
    Write(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::kGauge,
          sample->virtual_bytes);
    Write(out, "process_open_fds", "Number of open file descriptors.", MetricType::kGauge,
          sample->open_fds);
    Write(out, "process_start_time_seconds", "Start time of the process since the Unix epoch.",
          MetricType::kGauge, sample->start_time_seconds);
    Write(out, "bpo_process_uptime_seconds", "Seconds since the process started.",
          MetricType::kGauge, sample->uptime_seconds);
    WriteHeader("bpo_build_info", "bpo build; the value is always 1.", MetricType::kGauge, out);
    WriteSample("bpo_build_info", {{"version", kBpoVersion}, {"component", component_}}, 1, out);
  }

 private:
  static void Write(std::string* out, const char* name, const char* help, MetricType type,
                    double value) {
    WriteHeader(name, help, type, out);
    WriteSample(name, {}, value, out);
  }

  std::string component_;
};

}  // namespace

absl::StatusOr<ProcessSample> ReadProcessSample() {
  auto stat = ReadSmallFile("/proc/self/stat");
  if (!stat.ok()) return stat.status();
  // Fields after the parenthesised command name, which may contain spaces.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return absl::DataLossError("malformed /proc/self/stat");
  std::vector<std::string> f = absl::StrSplit(stat->substr(close + 2), ' ');
  // f[0] is field 3 (state): utime = field 14, stime 15, starttime 22, vsize 23, rss 24.
  if (f.size() < 22) return absl::DataLossError("short /proc/self/stat");
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  ProcessSample s;
  s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
  s.start_time_seconds = BootTimeSeconds() + std::stod(f[19]) / ticks;
  s.virtual_bytes = std::stod(f[20]);
  s.resident_bytes = std::stod(f[21]) * page;
  s.uptime_seconds =
      absl::ToDoubleSeconds(absl::Now() - absl::FromUnixSeconds(0)) - s.start_time_seconds;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    s.open_fds += 1;
  }
  return s;
}

std::unique_ptr<Collector> MakeProcessCollector(std::string component) {
  return std::make_unique<ProcessCollector>(std::move(component));
}

}  // namespace bpo::metrics
