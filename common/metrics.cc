#include "common/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bpo::metrics {
namespace {

void AtomicAdd(std::atomic<double>* target, double delta) {
  double old = target->load(std::memory_order_relaxed);
  while (!target->compare_exchange_weak(old, old + delta, std::memory_order_relaxed)) {
  }
}

bool IsValidMetricName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || name.find(':') != absl::string_view::npos) return false;
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return false;  // reserved
  return IsValidMetricName(name);
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void CollectChild(const std::string& name, const Labels& labels, const Counter& c,
                  std::string* out) {
  WriteSample(name, labels, c.Value(), out);
}

void CollectChild(const std::string& name, const Labels& labels, const Gauge& g, std::string* out) {
  WriteSample(name, labels, g.Value(), out);
}

void CollectChild(const std::string& name, const Labels& labels, const Histogram& h,
                  std::string* out) {
  const Histogram::Snapshot snap = h.Collect();
  Labels with_le = labels;
  for (size_t i = 0; i <= snap.bounds.size(); ++i) {
    with_le["le"] = i < snap.bounds.size() ? FormatValue(snap.bounds[i]) : "+Inf";
    WriteSample(name + "_bucket", with_le, static_cast<double>(snap.cumulative_counts[i]), out);
  }
  WriteSample(name + "_sum", labels, snap.sum, out);
  WriteSample(name + "_count", labels, static_cast<double>(snap.count), out);
}

}  // namespace

void Counter::Increment(double delta) {
  if (delta > 0) AtomicAdd(&value_, delta);
}

void Gauge::Increment(double delta) { AtomicAdd(&value_, delta); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double value) {
  // Bucket i counts values <= bounds_[i]; the last one is +Inf.
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(&sum_, value);
}

Histogram::Snapshot Histogram::Collect() const {
  Snapshot snap;
  snap.bounds = bounds_;
  snap.cumulative_counts.resize(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    snap.cumulative_counts[i] = total;
  }
  snap.count = total;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

template <typename T>
Family<T>::Family(std::string name, std::string help, MetricType type,
                  std::vector<std::string> label_names, std::vector<double> buckets)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      buckets_(std::move(buckets)) {}

template <typename T>
T& Family<T>::Add(const Labels& labels) {
  std::vector<std::string> given;
  for (const auto& [k, v] : labels) given.push_back(k);
  std::vector<std::string> expected = label_names_;
  std::sort(expected.begin(), expected.end());
  if (given != expected) {
    std::fprintf(stderr, "metrics: family %s has labels {%s}, Add() was given {%s}\n",
                 name_.c_str(), absl::StrJoin(expected, ",").c_str(),
                 absl::StrJoin(given, ",").c_str());
    std::abort();
  }
  absl::MutexLock lock(&mu_);
  auto& child = children_[labels];
  if (child == nullptr) {
    if constexpr (std::is_same_v<T, Histogram>) {
      child = std::make_unique<Histogram>(buckets_);
    } else {
      child = std::make_unique<T>();
    }
  }
  return *child;
}

template <typename T>
void Family<T>::Collect(std::string* out) const {
  WriteHeader(name_, help_, type_, out);
  absl::MutexLock lock(&mu_);
  for (const auto& [labels, child] : children_) CollectChild(name_, labels, *child, out);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

absl::Status Registry::Reserve(absl::string_view name, const std::vector<std::string>& label_names,
                               bool histogram) {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric name '", name, "' must match [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  for (const std::string& label : label_names) {
    if (!IsValidLabelName(label)) {
      return absl::InvalidArgumentError(absl::StrCat("metric ", name, ": label name '", label,
                                                     "' must match [a-zA-Z_][a-zA-Z0-9_]* "
                                                     "and not start with __"));
    }
    if (histogram && label == "le") {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", name, ": histograms cannot have a label named 'le'"));
    }
  }
  std::vector<std::string> sorted = label_names;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return absl::InvalidArgumentError(absl::StrCat("metric ", name, ": duplicate label names"));
  }
  mu_.AssertHeld();
  if (std::find(names_.begin(), names_.end(), name) != names_.end()) {
    return absl::AlreadyExistsError(absl::StrCat("metric ", name, " is already registered"));
  }
  names_.emplace_back(name);
  return absl::OkStatus();
}

absl::StatusOr<Family<Counter>*> Registry::AddCounter(absl::string_view name,
                                                      absl::string_view help,
                                                      std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  if (auto s = Reserve(name, label_names, false); !s.ok()) return s;
  auto family = std::make_unique<Family<Counter>>(std::string(name), std::string(help),
                                                  MetricType::kCounter, std::move(label_names));
  auto* raw = family.get();
  collectors_.push_back(std::move(family));
  return raw;
}

absl::StatusOr<Family<Gauge>*> Registry::AddGauge(absl::string_view name, absl::string_view help,
                                                  std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  if (auto s = Reserve(name, label_names, false); !s.ok()) return s;
  auto family = std::make_unique<Family<Gauge>>(std::string(name), std::string(help),
                                                MetricType::kGauge, std::move(label_names));
  auto* raw = family.get();
  collectors_.push_back(std::move(family));
  return raw;
}

absl::StatusOr<Family<Histogram>*> Registry::AddHistogram(absl::string_view name,
                                                          absl::string_view help,
                                                          std::vector<double> buckets,
                                                          std::vector<std::string> label_names) {
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", name, ": buckets must be finite and strictly increasing"));
    }
  }
  absl::MutexLock lock(&mu_);
  if (auto s = Reserve(name, label_names, true); !s.ok()) return s;
  auto family = std::make_unique<Family<Histogram>>(std::string(name), std::string(help),
                                                    MetricType::kHistogram, std::move(label_names),
                                                    std::move(buckets));
  auto* raw = family.get();
  collectors_.push_back(std::move(family));
  return raw;
}

void Registry::AddCollector(std::unique_ptr<Collector> collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& c : collectors_) c->Collect(&out);
  return out;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

void WriteHeader(absl::string_view name, absl::string_view help, MetricType type,
                 std::string* out) {
  absl::StrAppend(out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ",
                  TypeName(type), "\n");
}

void WriteSample(absl::string_view name, const Labels& labels, double value, std::string* out) {
  absl::StrAppend(out, name);
  if (!labels.empty()) {
    out->push_back('{');
    bool first = true;
    for (const auto& [k, v] : labels) {
      absl::StrAppend(out, first ? "" : ",", k, "=\"", EscapeLabelValue(v), "\"");
      first = false;
    }
    out->push_back('}');
  }
  absl::StrAppend(out, " ", FormatValue(value), "\n");
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Counts and most gauges are whole numbers.
  if (std::trunc(value) == value && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // Otherwise the shortest of 15, 16 or 17 significant digits that reads back
  // as the same double.
  char buf[32];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

}  // namespace bpo::metrics
