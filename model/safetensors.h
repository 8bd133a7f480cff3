// The safetensors format: an 8-byte little-endian header length N, N bytes of
// JSON (name -> {dtype, shape, data_offsets}, plus optional "__metadata__"),
// then the raw tensor data. Offsets are relative to the data section.
//
// Reading validates everything before any tensor is touched: the header length
// lies within the file, the JSON is an object of well-formed entries, names
// are unique, dtypes are known, shape x dtype size equals the byte length
// without overflow, and the entries tile the data section exactly (in range,
// no overlap, no hole), as the reference implementation requires. Every error
// names the file and the tensor. The parser is a function over bytes, so it
// can be fuzzed directly.
#ifndef BPO_MODEL_SAFETENSORS_H_
#define BPO_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace at {
class Tensor;
}  // namespace at

namespace bpo::model {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32", "BF16", ... as written in headers.
absl::string_view DTypeName(DType dtype);
size_t DTypeSize(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section, [begin, end)
  uint64_t end = 0;
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + N: where the data section starts in the file
  const TensorInfo* Find(absl::string_view name) const;
};

// Parses and validates the header of a complete file's bytes. `source` names
// the file in errors. INVALID_ARGUMENT (or DATA_LOSS for a truncated file)
// with "<source>: ..." and, where it applies, "tensor '<name>': ...".
absl::StatusOr<SafetensorsHeader> ParseSafetensors(absl::Span<const uint8_t> bytes,
                                                   absl::string_view source);

// A safetensors file mapped into memory. Thread-safe after Open.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  bool Contains(absl::string_view name) const { return header_.Find(name) != nullptr; }

  // The tensor's bytes as a CPU tensor of its dtype. It shares the mapping
  // (copy-on-write: writing to it never touches the file) unless the data is
  // misaligned for its dtype, then it is a copy. NOT_FOUND names the file.
  absl::StatusOr<at::Tensor> Tensor(absl::string_view name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  SafetensorsHeader header_;
  std::shared_ptr<void> mapping_;  // unmapped when the last tensor view goes
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// The bytes of a safetensors file holding `tensors` (in the given order) and
// `metadata`, built in memory; the header is padded so the data section starts
// 8-byte aligned. INVALID_ARGUMENT for a repeated or reserved name or a dtype
// without a safetensors name.
absl::StatusOr<std::string> SerializeSafetensors(
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

// Writes tensors (any device and layout; written contiguous from the CPU) and
// metadata atomically: a temporary file in the same directory, fsync, rename.
// Tensors are laid out in the given order; names must be unique.
absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace bpo::model

#endif  // BPO_MODEL_SAFETENSORS_H_
