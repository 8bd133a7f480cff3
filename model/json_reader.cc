#include "model/json_reader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace bpo::model {

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

absl::StatusOr<ConfigText> ReadModelConfig(const std::string& path) {
  std::filesystem::path p(path);
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such model directory or file"));
  }
  if (std::filesystem::is_directory(p, ec)) p /= "config.json";
  auto text = ReadTextFile(p.string());
  if (!text.ok()) return text.status();
  return ConfigText{p.string(), std::move(*text)};
}

}  // namespace bpo::model
