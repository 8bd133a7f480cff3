// libFuzzer entry: the parser must return OK or an error for any bytes,
// never crash or read out of bounds.
#include <cstddef>
#include <cstdint>

#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = bpo::model::ParseSafetensors(absl::MakeConstSpan(data, size), "fuzz");
  if (header.ok()) {
    for (const auto& t : header->tensors) {
      // Every validated entry lies inside the input.
      if (header->data_offset + t.end > size) __builtin_trap();
    }
  }
  return 0;
}
