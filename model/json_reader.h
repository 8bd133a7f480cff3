// Typed reads from a parsed JSON object (config.json, adapter_config.json)
// that remember the first error, naming the file and key.
#ifndef BPO_MODEL_JSON_READER_H_
#define BPO_MODEL_JSON_READER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace bpo::model {

class JsonReader {
 public:
  JsonReader(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}

  // Required when no default is given.
  int64_t Int(const char* key) { return Get<int64_t>(key, nullptr, "an integer"); }
  int64_t Int(const char* key, int64_t def) { return Get<int64_t>(key, &def, "an integer"); }
  double Double(const char* key, double def) { return Get<double>(key, &def, "a number"); }
  bool Bool(const char* key, bool def) { return Get<bool>(key, &def, "true or false"); }
  std::string String(const char* key, const std::string& def) {
    return Get<std::string>(key, &def, "a string");
  }

  const absl::Status& status() const { return status_; }

 private:
  template <typename T>
  T Get(const char* key, const T* def, const char* expected) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (def != nullptr) return *def;
      Fail(key, "missing");
      return T{};
    }
    bool ok;
    if constexpr (std::is_same_v<T, int64_t>) {
      ok = it->is_number_integer();
    } else if constexpr (std::is_same_v<T, double>) {
      ok = it->is_number();
    } else if constexpr (std::is_same_v<T, bool>) {
      ok = it->is_boolean();
    } else {
      ok = it->is_string();
    }
    if (!ok) {
      Fail(key, absl::StrCat("expected ", expected, ", got ", it->dump()));
      return def != nullptr ? *def : T{};
    }
    return it->template get<T>();
  }

  void Fail(const char* key, const std::string& why) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat(source_, ": ", key, ": ", why));
    }
  }

  const nlohmann::json& j_;
  std::string source_;
  absl::Status status_;
};

#define BPO_RETURN_IF_JSON_ERROR(reader) \
  if (!(reader).status().ok()) return (reader).status()

// The whole file as a string; NOT_FOUND names it.
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

struct ConfigText {
  std::string path;  // the config.json actually read
  std::string text;
};
// `path` is a model directory (its config.json is read) or a config file.
// NOT_FOUND names what is missing.
absl::StatusOr<ConfigText> ReadModelConfig(const std::string& path);

}  // namespace bpo::model

#endif  // BPO_MODEL_JSON_READER_H_
