#include "snapshot/snapshot.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace bpo::snapshot {
namespace {

using nlohmann::json;

constexpr char kMemberPrefix[] = "member";

std::string MemberKey(int member, const std::string& peft_key) {
  return absl::StrCat(kMemberPrefix, member, ".", peft_key);
}

struct FloatType {
  at::ScalarType scalar;
  model::DType dtype;
};

constexpr FloatType kFloatTypes[] = {{at::kFloat, model::DType::kF32},
                                     {at::kBFloat16, model::DType::kBF16},
                                     {at::kHalf, model::DType::kF16},
                                     {at::kDouble, model::DType::kF64}};

// Scaling is folded into the tensors: lora_alpha = r gives PEFT scaling 1.
std::string AdapterConfigJson(int64_t rank, const std::vector<std::string>& modules) {
  return model::PeftAdapterConfigJson(rank, static_cast<double>(rank), 0.0, modules, "");
}

absl::Status Invalid(const std::string& source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

// Parses __metadata__ into SnapshotMetadata; every field is required.
absl::StatusOr<SnapshotMetadata> ParseMetadata(const std::map<std::string, std::string>& meta,
                                               const std::string& source) {
  auto field = [&](const char* key) -> absl::StatusOr<std::string> {
    auto it = meta.find(key);
    if (it == meta.end()) return Invalid(source, absl::StrCat("__metadata__ has no '", key, "'"));
    return it->second;
  };
  auto bad = [&](const char* key, const std::string& value) {
    return Invalid(source, absl::StrCat("__metadata__ '", key, "': bad value '", value, "'"));
  };
  SnapshotMetadata m;
  BPO_ASSIGN_OR_RETURN(m.format, field("format"));
  if (m.format != kSnapshotFormat) {
    return Invalid(source, absl::StrCat("format '", m.format, "' is not ", kSnapshotFormat));
  }
  std::string s;
  BPO_ASSIGN_OR_RETURN(s, field("version"));
  if (!absl::SimpleAtoi(s, &m.version)) return bad("version", s);
  BPO_ASSIGN_OR_RETURN(s, field("learner_step"));
  if (!absl::SimpleAtoi(s, &m.learner_step)) return bad("learner_step", s);
  BPO_ASSIGN_OR_RETURN(s, field("merge_mode"));
  if (s == model::MergeModeName(model::MergeMode::kMeanDelta)) {
    m.merge_mode = model::MergeMode::kMeanDelta;
  } else if (s == model::MergeModeName(model::MergeMode::kPeftLinear)) {
    m.merge_mode = model::MergeMode::kPeftLinear;
  } else {
    return bad("merge_mode", s);
  }
  BPO_ASSIGN_OR_RETURN(s, field("rank"));
  if (!absl::SimpleAtoi(s, &m.rank) || m.rank < 1) return bad("rank", s);
  BPO_ASSIGN_OR_RETURN(s, field("members"));
  if (!absl::SimpleAtoi(s, &m.members) || m.members < 1) return bad("members", s);
  BPO_ASSIGN_OR_RETURN(s, field("members_included"));
  if (s != "true" && s != "false") return bad("members_included", s);
  m.members_included = s == "true";
  BPO_ASSIGN_OR_RETURN(s, field("member_rank"));
  if (!absl::SimpleAtoi(s, &m.member_rank) || m.member_rank < 1) return bad("member_rank", s);
  BPO_ASSIGN_OR_RETURN(s, field("member_lora_alpha"));
  if (!absl::SimpleAtod(s, &m.member_lora_alpha) || !(m.member_lora_alpha > 0)) {
    return bad("member_lora_alpha", s);
  }
  const int64_t want_rank =
      m.merge_mode == model::MergeMode::kMeanDelta ? m.members * m.member_rank : m.member_rank;
  if (m.rank != want_rank) {
    return Invalid(source,
                   absl::StrCat("rank ", m.rank, " does not fit ", m.members, " members of rank ",
                                m.member_rank, " merged with ", model::MergeModeName(m.merge_mode),
                                " (expected ", want_rank, ")"));
  }
  BPO_ASSIGN_OR_RETURN(s, field("target_modules"));
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    m.target_modules.emplace_back(part);
  }
  if (m.target_modules.empty()) return bad("target_modules", s);
  BPO_ASSIGN_OR_RETURN(m.adapter_config, field("adapter_config"));
  return m;
}

absl::StatusOr<DecodedSnapshot> Decode(std::string_view bytes, const model::CausalLm& model,
                                       const std::string& source) {
  const auto span =
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  BPO_ASSIGN_OR_RETURN(model::SafetensorsHeader header, model::ParseSafetensors(span, source));
  DecodedSnapshot out;
  BPO_ASSIGN_OR_RETURN(out.metadata, ParseMetadata(header.metadata, source));
  const SnapshotMetadata& m = out.metadata;

  std::set<model::LinearKind> kinds;
  for (const std::string& name : m.target_modules) {
    bool known = false;
    for (int k = 0; k < model::kNumLinearKinds; ++k) {
      if (name == model::LinearName(static_cast<model::LinearKind>(k))) {
        kinds.insert(static_cast<model::LinearKind>(k));
        known = true;
      }
    }
    if (!known) {
      return Invalid(source, absl::StrCat("target module '", name, "' is not a linear layer"));
    }
  }
  const int64_t layers = model.config().num_layers;
  std::vector<int> slots(layers * model::kNumLinearKinds, -1);
  for (int64_t l = 0; l < layers; ++l) {
    for (model::LinearKind kind : kinds) {  // std::set: the kind order, as LoraEnsemble
      const at::Tensor& w = model.layer(l).linear[static_cast<int>(kind)].weight;
      slots[l * model::kNumLinearKinds + static_cast<int>(kind)] =
          static_cast<int>(out.targets.size());
      out.targets.push_back({l, kind, w.size(1), w.size(0)});
    }
  }

  // Every expected tensor and its shape, in load order.
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected;
  auto expect = [&](const std::string& prefix, int64_t rank) {
    for (const char* ab : {"A", "B"}) {
      for (const model::LoraTarget& t : out.targets) {
        expected.push_back(
            {prefix + model::PeftKey(t.layer, t.kind, ab),
             ab[0] == 'A' ? std::vector<int64_t>{rank, t.in} : std::vector<int64_t>{t.out, rank}});
      }
    }
  };
  expect("", m.rank);
  if (m.members_included) {
    for (int i = 0; i < m.members; ++i) expect(MemberKey(i, ""), m.member_rank);
  }
  std::map<std::string, const std::vector<int64_t>*> wanted;
  for (const auto& [name, shape] : expected) wanted[name] = &shape;
  for (const model::TensorInfo& t : header.tensors) {
    auto it = wanted.find(t.name);
    if (it == wanted.end()) {
      return Invalid(
          source, absl::StrCat("tensor '", t.name, "' is not expected for this ", layers,
                               "-layer model with targets ", absl::StrJoin(m.target_modules, ",")));
    }
    if (t.shape != *it->second) {
      return Invalid(source,
                     absl::StrCat("tensor '", t.name, "' has shape [", absl::StrJoin(t.shape, ", "),
                                  "], expected [", absl::StrJoin(*it->second, ", "), "]"));
    }
  }
  std::map<std::string, const model::TensorInfo*> present;
  for (const model::TensorInfo& t : header.tensors) present[t.name] = &t;

  std::vector<at::Tensor> loaded;
  for (const auto& [name, shape] : expected) {
    auto it = present.find(name);
    if (it == present.end()) return Invalid(source, absl::StrCat("tensor '", name, "' is missing"));
    const model::TensorInfo& info = *it->second;
    const FloatType* type = nullptr;
    for (const auto& f : kFloatTypes) {
      if (f.dtype == info.dtype) type = &f;
    }
    if (type == nullptr) {
      return Invalid(source,
                     absl::StrCat("tensor '", name, "' has dtype ", model::DTypeName(info.dtype),
                                  ", expected a floating type"));
    }
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type->scalar));
    std::memcpy(t.data_ptr(), bytes.data() + header.data_offset + info.begin,
                info.end - info.begin);
    loaded.push_back(t.to(model.options()));
  }

  const size_t n = out.targets.size();
  auto take = [&](size_t first, size_t count) {
    return std::vector<at::Tensor>(loaded.begin() + first, loaded.begin() + first + count);
  };
  out.merged = model::MergedLora::FromTensors(slots, take(0, n), take(n, n));
  if (m.members_included) {
    for (int i = 0; i < m.members; ++i) out.member_params.push_back(take(2 * n * (i + 1), 2 * n));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> EncodeSnapshot(const model::LoraEnsemble& lora, model::MergeMode mode,
                                           bool include_members, uint64_t version,
                                           int64_t learner_step) {
  try {
    const model::MergedLora merged = lora.Merge(mode);
    const auto& targets = lora.targets();
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const char* ab : {"A", "B"}) {
      for (size_t t = 0; t < targets.size(); ++t) {
        tensors.emplace_back(model::PeftKey(targets[t].layer, targets[t].kind, ab),
                             ab[0] == 'A' ? merged.a()[t] : merged.b()[t]);
      }
    }
    if (include_members) {
      for (int i = 0; i < lora.members(); ++i) {
        for (const char* ab : {"A", "B"}) {
          for (size_t t = 0; t < targets.size(); ++t) {
            tensors.emplace_back(
                MemberKey(i, model::PeftKey(targets[t].layer, targets[t].kind, ab)),
                ab[0] == 'A' ? lora.A(i, static_cast<int>(t)) : lora.B(i, static_cast<int>(t)));
          }
        }
      }
    }
    std::set<std::string> modules;
    for (const model::LoraTarget& t : targets) modules.insert(model::LinearName(t.kind));
    const std::vector<std::string> module_list(modules.begin(), modules.end());
    const std::map<std::string, std::string> metadata = {
        {"format", kSnapshotFormat},
        {"version", absl::StrCat(version)},
        {"learner_step", absl::StrCat(learner_step)},
        {"merge_mode", model::MergeModeName(mode)},
        {"rank", absl::StrCat(merged.rank())},
        {"members", absl::StrCat(lora.members())},
        {"members_included", include_members ? "true" : "false"},
        {"member_rank", absl::StrCat(lora.rank())},
        {"member_lora_alpha", absl::StrFormat("%.17g", lora.options().alpha)},
        {"target_modules", absl::StrJoin(module_list, ",")},
        {"adapter_config", AdapterConfigJson(merged.rank(), module_list)},
    };
    return model::SerializeSafetensors(tensors, metadata);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("snapshot ", version, ": encoding failed: ", e.what()));
  }
}

absl::StatusOr<DecodedSnapshot> DecodeSnapshot(std::string_view bytes, const model::CausalLm& model,
                                               const std::string& source) {
  try {
    return Decode(bytes, model, source);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(source, ": decoding failed: ", e.what()));
  }
}

SnapshotStore::SnapshotStore(SnapshotStoreOptions options) : options_(std::move(options)) {}

std::string SnapshotStore::PayloadPath(const std::string& dir, uint64_t version) {
  return absl::StrCat(dir, "/snapshot-", version, ".safetensors");
}

absl::Status SnapshotStore::WriteShared(const bpo::v1::SnapshotInfo& info,
                                        const std::string& bytes) const {
  std::error_code ec;
  std::filesystem::create_directories(options_.shared_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(options_.shared_dir, ": cannot create: ", ec.message()));
  }
  const std::string payload = PayloadPath(options_.shared_dir, info.version());
  BPO_RETURN_IF_ERROR(WriteFileAtomically(payload, bytes));
  // Last, as the marker that the payload is complete ("sha256sum -c" reads it).
  const std::string name = std::filesystem::path(payload).filename().string();
  return WriteFileAtomically(
      absl::StrCat(options_.shared_dir, "/snapshot-", info.version(), ".sha256"),
      absl::StrCat(info.sha256(), "  ", name, "\n"));
}

absl::StatusOr<bpo::v1::SnapshotInfo> SnapshotStore::Publish(uint64_t version, int64_t learner_step,
                                                             std::string bytes) {
  bpo::v1::SnapshotInfo info;
  info.set_version(version);
  info.set_learner_step(learner_step);
  info.set_size_bytes(bytes.size());
  info.set_sha256(Sha256Hex(bytes));
  info.set_format(options_.format);
  const int64_t now_ns = absl::ToUnixNanos(absl::Now());
  info.mutable_created_at()->set_seconds(now_ns / 1000000000);
  info.mutable_created_at()->set_nanos(static_cast<int32_t>(now_ns % 1000000000));

  {
    absl::MutexLock lock(&mu_);
    BPO_ASSIGN_OR_RETURN(const bool held, HeldWithSameBytes(version, info.sha256()));
    if (held) return held_[version].info;
  }
  if (!options_.shared_dir.empty()) BPO_RETURN_IF_ERROR(WriteShared(info, bytes));
  absl::MutexLock lock(&mu_);
  BPO_ASSIGN_OR_RETURN(const bool held, HeldWithSameBytes(version, info.sha256()));
  if (held) return held_[version].info;
  held_[version] = {info, std::make_shared<const std::string>(std::move(bytes))};
  const size_t keep = static_cast<size_t>(std::max(1, options_.keep_versions));
  while (held_.size() > keep) held_.erase(held_.begin());
  return info;
}

absl::StatusOr<bool> SnapshotStore::HeldWithSameBytes(uint64_t version,
                                                      const std::string& sha256) const {
  auto it = held_.find(version);
  if (it == held_.end()) return false;
  if (it->second.info.sha256() == sha256) return true;
  return absl::AlreadyExistsError(
      absl::StrCat("snapshot ", version, " is already published with sha256 ",
                   it->second.info.sha256(), "; refusing different bytes (sha256 ", sha256, ")"));
}

absl::StatusOr<StoredSnapshot> SnapshotStore::Get(uint64_t version) const {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(version);
  if (it != held_.end()) return it->second;
  std::vector<uint64_t> versions;
  for (const auto& [v, unused] : held_) versions.push_back(v);
  return absl::NotFoundError(absl::StrCat(
      "snapshot version ", version,
      " is not held (held: ", versions.empty() ? "none" : absl::StrJoin(versions, ", "), ")"));
}

std::vector<bpo::v1::SnapshotInfo> SnapshotStore::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<bpo::v1::SnapshotInfo> out;
  for (const auto& [v, s] : held_) out.push_back(s.info);
  return out;
}

}  // namespace bpo::snapshot

namespace bpo::snapshot {

absl::StatusOr<std::vector<bpo::v1::SnapshotInfo>> RepublishSnapshots(
    SnapshotStore* store, const model::CausalLm& model) {
  const std::string& dir = store->options().shared_dir;
  std::vector<bpo::v1::SnapshotInfo> out;
  std::error_code ec;
  if (dir.empty() || !std::filesystem::is_directory(dir, ec)) return out;
  std::vector<uint64_t> versions;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    uint64_t v = 0;
    if (absl::StartsWith(name, "snapshot-") && absl::EndsWith(name, ".sha256") &&
        absl::SimpleAtoi(name.substr(9, name.size() - 9 - 7), &v)) {
      versions.push_back(v);
    }
  }
  std::sort(versions.begin(), versions.end());
  const size_t keep = static_cast<size_t>(std::max(1, store->options().keep_versions));
  if (versions.size() > keep) versions.erase(versions.begin(), versions.end() - keep);
  for (uint64_t v : versions) {
    const std::string payload = SnapshotStore::PayloadPath(dir, v);
    BPO_ASSIGN_OR_RETURN(std::string marker,
                         ReadWholeFile(absl::StrCat(dir, "/snapshot-", v, ".sha256")));
    BPO_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(payload));
    if (Sha256Hex(bytes) != marker.substr(0, 64)) {
      return absl::DataLossError(
          absl::StrCat(payload, ": sha256 does not match its .sha256 marker"));
    }
    BPO_ASSIGN_OR_RETURN(DecodedSnapshot decoded, DecodeSnapshot(bytes, model, payload));
    BPO_ASSIGN_OR_RETURN(bpo::v1::SnapshotInfo info,
                         store->Publish(v, decoded.metadata.learner_step, std::move(bytes)));
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace bpo::snapshot
