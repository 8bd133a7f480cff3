// libFuzzer target: the safetensors parser (model/safetensors.h). Any bytes
// give a header or an error, never a crash or a read out of bounds; a header
// that parses describes tensors that tile the data section exactly, in
// offset order, each with as many bytes as its shape and dtype need.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "model/safetensors.h"

namespace {

[[noreturn]] void Fail(const char* why) {
  std::fprintf(stderr, "safetensors_fuzzer: %s\n", why);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = bpo::model::ParseSafetensors(absl::MakeConstSpan(data, size), "fuzz");
  if (!header.ok()) return 0;
  if (header->data_offset < 8 || header->data_offset > size) Fail("data offset outside the file");
  uint64_t next = 0;
  for (const bpo::model::TensorInfo& t : header->tensors) {
    if (t.begin != next || t.end < t.begin) Fail("tensors do not tile the data section");
    if (t.end - t.begin != static_cast<uint64_t>(t.numel()) * bpo::model::DTypeSize(t.dtype)) {
      Fail("a tensor's byte length disagrees with its shape and dtype");
    }
    if (header->Find(t.name) != &t) Fail("a tensor is not found by its name");
    next = t.end;
  }
  if (header->data_offset + next != size) Fail("the data section is not covered exactly");
  return 0;
}
