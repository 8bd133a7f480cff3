#include "model/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace bpo::model {
namespace {

using nlohmann::json;

// Headers beyond this are refused before any allocation (the reference
// implementation's limit is 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

struct DTypeSpec {
  DType dtype;
  const char* name;
  size_t size;
  at::ScalarType scalar;
};

constexpr DTypeSpec kDTypes[] = {
    {DType::kF64, "F64", 8, at::kDouble}, {DType::kF32, "F32", 4, at::kFloat},
    {DType::kF16, "F16", 2, at::kHalf},   {DType::kBF16, "BF16", 2, at::kBFloat16},
    {DType::kI64, "I64", 8, at::kLong},   {DType::kI32, "I32", 4, at::kInt},
    {DType::kI16, "I16", 2, at::kShort},  {DType::kI8, "I8", 1, at::kChar},
    {DType::kU8, "U8", 1, at::kByte},     {DType::kBool, "BOOL", 1, at::kBool},
};

const DTypeSpec& Spec(DType dtype) {
  for (const auto& s : kDTypes) {
    if (s.dtype == dtype) return s;
  }
  return kDTypes[1];
}

absl::Status Invalid(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

absl::Status InvalidTensor(absl::string_view source, absl::string_view name,
                           absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": tensor '", name, "': ", what));
}

// Reads a non-negative integer that fits in 63 bits (JSON numbers may be
// negative, fractional or huge).
bool AsOffset(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return *out <= (uint64_t{1} << 62);
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

absl::StatusOr<TensorInfo> ParseEntry(absl::string_view source, const std::string& name,
                                      const json& entry) {
  if (!entry.is_object()) return InvalidTensor(source, name, "entry is not a JSON object");
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return InvalidTensor(source, name, absl::StrCat("unknown field '", key, "'"));
    }
  }
  TensorInfo info;
  info.name = name;
  const auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) {
    return InvalidTensor(source, name, "missing dtype");
  }
  const std::string dtype_name = dtype->get<std::string>();
  const DTypeSpec* spec = nullptr;
  for (const auto& s : kDTypes) {
    if (dtype_name == s.name) spec = &s;
  }
  if (spec == nullptr) {
    return InvalidTensor(source, name, absl::StrCat("unsupported dtype '", dtype_name, "'"));
  }
  info.dtype = spec->dtype;
  const auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) {
    return InvalidTensor(source, name, "missing shape");
  }
  // Element count in bytes, checked for overflow at every step.
  uint64_t bytes = spec->size;
  for (const json& d : *shape) {
    uint64_t dim;
    if (!AsOffset(d, &dim)) {
      return InvalidTensor(source, name, absl::StrCat("bad dimension ", d.dump()));
    }
    if (dim != 0 && bytes > (uint64_t{1} << 62) / dim) {
      return InvalidTensor(source, name, "shape is too large");
    }
    bytes *= dim;
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !AsOffset((*offsets)[0], &info.begin) || !AsOffset((*offsets)[1], &info.end)) {
    return InvalidTensor(source, name, "data_offsets must be [begin, end]");
  }
  if (info.end < info.begin) {
    return InvalidTensor(
        source, name,
        absl::StrCat("data_offsets [", info.begin, ", ", info.end, "] end before they begin"));
  }
  if (info.end - info.begin != bytes) {
    return InvalidTensor(
        source, name,
        absl::StrCat("shape [", absl::StrJoin(info.shape, ", "), "] of ", dtype_name, " needs ",
                     bytes, " bytes but data_offsets [", info.begin, ", ", info.end, "] hold ",
                     info.end - info.begin));
  }
  return info;
}

}  // namespace

absl::string_view DTypeName(DType dtype) { return Spec(dtype).name; }
size_t DTypeSize(DType dtype) { return Spec(dtype).size; }

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const TensorInfo* SafetensorsHeader::Find(absl::string_view name) const {
  for (const TensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensors(absl::Span<const uint8_t> bytes,
                                                   absl::string_view source) {
  if (bytes.size() < 8) {
    return absl::DataLossError(
        absl::StrCat(source, ": ", bytes.size(), " bytes is too short for a safetensors file"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeaderBytes) {
    return Invalid(source, absl::StrCat("header length ", n, " exceeds the limit of ",
                                        kMaxHeaderBytes, " bytes"));
  }
  if (n > bytes.size() - 8) {
    return absl::DataLossError(absl::StrCat(source, ": header length ", n,
                                            " runs past the end of the ", bytes.size(),
                                            "-byte file (truncated?)"));
  }
  const char* text = reinterpret_cast<const char*>(bytes.data() + 8);
  // Duplicate names are invisible once parsed (the last one wins), so watch
  // the keys of the top-level object while parsing.
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t watch = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header = json::parse(text, text + n, watch, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Invalid(source, "header is not valid JSON");
  if (!header.is_object()) return Invalid(source, "header is not a JSON object");
  if (!duplicate.empty()) {
    return Invalid(source, absl::StrCat("tensor '", duplicate, "' appears twice in the header"));
  }

  SafetensorsHeader out;
  out.data_offset = 8 + n;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Invalid(source, "__metadata__ is not a JSON object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return Invalid(source, absl::StrCat("__metadata__ value of '", key, "' is not a string"));
        }
        out.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    auto info = ParseEntry(source, name, entry);
    if (!info.ok()) return info.status();
    out.tensors.push_back(std::move(*info));
  }
  // The entries must tile the data section: sorted by offset, each starts
  // where the previous ended, and the last ends at the end of the file.
  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t data_size = bytes.size() - out.data_offset;
  uint64_t expected = 0;
  for (const TensorInfo& t : out.tensors) {
    if (t.begin < expected) {
      return InvalidTensor(source, t.name,
                           absl::StrCat("bytes [", t.begin, ", ", t.end,
                                        ") overlap the previous tensor, which ends at ", expected));
    }
    if (t.begin > expected) {
      return InvalidTensor(
          source, t.name,
          absl::StrCat("starts at byte ", t.begin, " but the previous tensor ends at ", expected,
                       " (holes are not allowed)"));
    }
    if (t.end > data_size) {
      return absl::DataLossError(absl::StrCat(source, ": tensor '", t.name, "': bytes [", t.begin,
                                              ", ", t.end, ") run past the ", data_size,
                                              "-byte data section (truncated?)"));
    }
    expected = t.end;
  }
  if (expected != data_size) {
    return Invalid(source, absl::StrCat("the data section has ", data_size,
                                        " bytes but the tensors cover ", expected));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  void* addr = nullptr;
  if (file->size_ > 0) {
    // Private and writable: tensors that alias the mapping are copy-on-write.
    addr = mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  }
  ::close(fd);
  if (addr == MAP_FAILED) {
    return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(errno)));
  }
  const size_t size = file->size_;
  file->mapping_ = std::shared_ptr<void>(addr, [size](void* p) {
    if (p != nullptr) munmap(p, size);
  });
  file->data_ = static_cast<const uint8_t*>(addr);
  auto header = ParseSafetensors(absl::MakeConstSpan(file->data_, file->size_), path);
  if (!header.ok()) return header.status();
  file->header_ = std::move(*header);
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

absl::StatusOr<at::Tensor> SafetensorsFile::Tensor(absl::string_view name) const {
  const TensorInfo* info = header_.Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  }
  const DTypeSpec& spec = Spec(info->dtype);
  uint8_t* ptr = const_cast<uint8_t*>(data_) + header_.data_offset + info->begin;
  const auto options = at::TensorOptions().dtype(spec.scalar).device(at::kCPU);
  if (info->numel() == 0) return at::empty(info->shape, options);
  if (reinterpret_cast<uintptr_t>(ptr) % spec.size != 0) {
    at::Tensor out = at::empty(info->shape, options);
    std::memcpy(out.data_ptr(), ptr, info->end - info->begin);
    return out;
  }
  std::shared_ptr<void> keep = mapping_;
  return at::from_blob(
      ptr, info->shape, [keep](void*) mutable { keep.reset(); }, options);
}

namespace {

// The JSON header (padded to a multiple of 8 bytes) and the tensors'
// contiguous CPU copies in file order.
struct Layout {
  std::string header;
  std::vector<at::Tensor> data;
};

absl::StatusOr<Layout> LayOut(const std::string& where,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  Layout out;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || !names.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": tensor name '", name, "' is reserved or repeated"));
    }
    const DTypeSpec* spec = nullptr;
    for (const auto& s : kDTypes) {
      if (s.scalar == tensor.scalar_type()) spec = &s;
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": tensor '", name, "': dtype ",
                                                     at::toString(tensor.scalar_type()),
                                                     " has no safetensors name"));
    }
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * spec->size;
    header[name] = {{"dtype", spec->name},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    out.data.push_back(std::move(t));
  }
  out.header = header.dump();
  out.header.append((8 - out.header.size() % 8) % 8, ' ');
  return out;
}

std::string LengthPrefix(const std::string& header) {
  std::string len(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(n >> (8 * i));
  return len;
}

}  // namespace

absl::StatusOr<std::string> SerializeSafetensors(
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  auto layout = LayOut("safetensors", tensors, metadata);
  if (!layout.ok()) return layout.status();
  std::string out = LengthPrefix(layout->header) + layout->header;
  for (const at::Tensor& t : layout->data) {
    out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  }
  return out;
}

absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  auto layout = LayOut(path, tensors, metadata);
  if (!layout.ok()) return layout.status();
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(tmp, ": cannot create: ", std::strerror(errno)));
  }
  auto write_all = [fd](const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      c += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  const std::string len = LengthPrefix(layout->header);
  bool ok = write_all(len.data(), 8) && write_all(layout->header.data(), layout->header.size());
  for (size_t i = 0; ok && i < layout->data.size(); ++i) {
    ok = write_all(layout->data[i].data_ptr(), layout->data[i].nbytes());
  }
  // Every step checked: a short write (a full disk), fsync, close (NFS
  // reports deferred write errors there) and the rename.
  ok = ok && ::fsync(fd) == 0;
  std::string why = ok ? "" : std::strerror(errno);
  if (::close(fd) != 0 && ok) {
    ok = false;
    why = std::strerror(errno);
  }
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    why = std::strerror(errno);
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat(path, ": write failed: ", why));
  }
  // Make the rename itself durable.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) {
    why = std::strerror(errno);
    if (dfd >= 0) ::close(dfd);
    return absl::InternalError(absl::StrCat(dir, ": fsync after renaming ", path, ": ", why));
  }
  if (::close(dfd) != 0) {
    return absl::InternalError(absl::StrCat(dir, ": close: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace bpo::model
