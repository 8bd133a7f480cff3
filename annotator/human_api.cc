#include "annotator/human_api.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace bpo::annotator {
namespace {

using json = nlohmann::json;

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

}  // namespace bpo::annotator
