#include "annotator/human_api.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace bpo::annotator {
namespace {

using json = nlohmann::json;

int FromHex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseFields(
    const std::string& body, const std::vector<std::string>& fields) {
  const json value = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return absl::InvalidArgumentError("malformed JSON in the request body");
  }
  if (!value.is_object())
    return absl::InvalidArgumentError("the request body must be a JSON object");
  std::map<std::string, std::string> out;
  for (const std::string& field : fields) {
    auto it = value.find(field);
    if (it == value.end() || !it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the request body needs the string field '", field, "'"));
    }
    out[field] = it->get<std::string>();
  }
  return out;
}

std::string QueryParam(const std::string& query, absl::string_view key) {
  for (absl::string_view part : absl::StrSplit(query, '&')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.first != key) continue;
    std::string out;
    for (size_t i = 0; i < kv.second.size(); ++i) {
      const char c = kv.second[i];
      if (c == '+') {
        out += ' ';
      } else if (c == '%' && i + 2 < kv.second.size() && FromHex(kv.second[i + 1]) >= 0 &&
                 FromHex(kv.second[i + 2]) >= 0) {
        out += static_cast<char>(FromHex(kv.second[i + 1]) * 16 + FromHex(kv.second[i + 2]));
        i += 2;
      } else {
        out += c;
      }
    }
    return out;
  }
  return "";
}

}  // namespace bpo::annotator
