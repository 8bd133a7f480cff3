#include "model/checkpoint.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/json_reader.h"

namespace bpo::model {

namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir_ = dir;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::vector<std::string> files;
  if (fs::exists(single)) {
    files.push_back(single.string());
  } else if (fs::exists(index)) {
    auto text = ReadTextFile(index.string());
    if (!text.ok()) return text.status();
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index.string(), ": weight_map: missing or not an object"));
    }
    std::set<std::string> shard_names;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string() || absl::StrContains(file.get<std::string>(), "/")) {
        return absl::InvalidArgumentError(absl::StrCat(index.string(), ": weight_map: tensor '",
                                                       name, "' names a bad shard ", file.dump()));
      }
      shard_names.insert(file.get<std::string>());
    }
    for (const auto& s : shard_names) files.push_back((fs::path(dir) / s).string());
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir,
                     ": no model.safetensors or model.safetensors.index.json (only safetensors "
                     "checkpoints are supported)"));
  }
  for (const std::string& f : files) {
    auto file = SafetensorsFile::Open(f);
    if (!file.ok()) return file.status();
    for (const TensorInfo& t : (*file)->header().tensors) {
      if (ckpt->where_.count(t.name)) {
        return absl::InvalidArgumentError(
            absl::StrCat(f, ": tensor '", t.name, "' is also in ", ckpt->where_[t.name]->path()));
      }
      ckpt->where_[t.name] = file->get();
    }
    ckpt->files_.push_back(std::move(*file));
  }
  return ckpt;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : where_) out.push_back(name);
  return out;
}

std::string Checkpoint::FileOf(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? dir_ : it->second->path();
}

const TensorInfo* Checkpoint::Info(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? nullptr : it->second->header().Find(name);
}

absl::StatusOr<at::Tensor> Checkpoint::Take(const std::string& name, at::IntArrayRef shape,
                                            const at::TensorOptions& options) {
  auto it = where_.find(name);
  if (it == where_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": missing tensor '", name, "'"));
  }
  auto t = it->second->Tensor(name);
  if (!t.ok()) return t.status();
  if (t->sizes() != shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        it->second->path(), ": tensor '", name, "' has shape [", absl::StrJoin(t->sizes(), ", "),
        "] but config.json implies [", absl::StrJoin(shape, ", "), "]"));
  }
  if (!t->is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(it->second->path(), ": tensor '", name,
                                                   "' has non-float dtype ",
                                                   at::toString(t->scalar_type())));
  }
  taken_.insert(name);
  // Always a fresh copy: weights never alias the mapped file.
  return t->to(options, /*non_blocking=*/false, /*copy=*/true);
}

std::vector<std::string> Checkpoint::Untaken(const std::vector<std::string>& ignored) const {
  std::vector<std::string> out;
  for (const auto& [name, file] : where_) {
    if (taken_.count(name)) continue;
    bool skip = false;
    for (const auto& pattern : ignored) skip = skip || absl::StrContains(name, pattern);
    if (!skip) out.push_back(name);
  }
  return out;
}

}  // namespace bpo::model
