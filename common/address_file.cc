#include "common/address_file.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/endpoint.h"
#include "common/files.h"
#include "nlohmann/json.hpp"

namespace bpo {

namespace {
constexpr absl::string_view kFilePrefix = "file:";
}  // namespace

bool IsFileEndpoint(absl::string_view endpoint) { return absl::StartsWith(endpoint, kFilePrefix); }

std::string FileEndpointPath(absl::string_view endpoint) {
  if (!IsFileEndpoint(endpoint)) return "";
  return std::string(endpoint.substr(kFilePrefix.size()));
}

absl::Status WriteAddressFile(const std::string& path, const AddressMap& addresses) {
  nlohmann::json j = nlohmann::json::object();
  j["pid"] = static_cast<int64_t>(getpid());
  for (const auto& [key, value] : addresses) j[key] = value;
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(parent.string(), ": ", ec.message()));
  return WriteFileAtomically(path, j.dump() + "\n");
}

absl::StatusOr<AddressMap> ReadAddressFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (absl::IsNotFound(text.status())) {
    return absl::UnavailableError(
        absl::StrCat("address file ", path, " does not exist yet (its server has not started)"));
  }
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("address file ", path, ": not a JSON object of addresses"));
  }
  AddressMap out;
  for (const auto& [key, value] : j.items()) {
    if (value.is_string()) {
      out[key] = value.get<std::string>();
    } else if (key != "pid") {
      return absl::InvalidArgumentError(
          absl::StrCat("address file ", path, ": entry '", key, "' is not a string"));
    }
  }
  return out;
}

absl::StatusOr<std::string> ResolveEndpoint(absl::string_view endpoint, absl::string_view key) {
  if (!IsFileEndpoint(endpoint)) return std::string(endpoint);
  const std::string path = FileEndpointPath(endpoint);
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint '", endpoint, "': 'file:' needs a path"));
  }
  absl::StatusOr<AddressMap> addresses = ReadAddressFile(path);
  if (!addresses.ok()) return addresses.status();
  auto it = addresses->find(std::string(key));
  if (it == addresses->end()) {
    return absl::UnavailableError(
        absl::StrCat("address file ", path, " has no '", key, "' address yet"));
  }
  return it->second;
}

std::string PublishedAddress(absl::string_view listen, int port) {
  absl::StatusOr<Endpoint> ep = ParseEndpoint(listen);
  std::string host = ep.ok() ? ep->host : "127.0.0.1";
  if (host.empty() || host == "0.0.0.0" || host == "::") {
    char name[256] = {0};
    gethostname(name, sizeof(name) - 1);
    host = name;
  }
  return Endpoint{host, port}.ToString();
}

}  // namespace bpo
