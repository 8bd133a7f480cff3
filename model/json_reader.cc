#include "model/json_reader.h"

#include <cerrno>
#include <cstring>
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

}  // namespace bpo::model
