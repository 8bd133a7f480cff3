// For fuzz targets whose parser reads a path: the input written to one file
// per process, rewritten for every input.
#ifndef BPO_FUZZ_TEMP_FILE_H_
#define BPO_FUZZ_TEMP_FILE_H_

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace bpo::fuzz {

// Writes `data` to $TMPDIR (or /tmp)/bpo-fuzz-<pid><suffix> and returns the
// path. Aborts when it cannot: the fuzzer would test nothing.
inline std::string WriteTempFile(const uint8_t* data, size_t size, const char* suffix) {
  static const char* const dir = [] {
    const char* d = std::getenv("TMPDIR");
    return d != nullptr && *d != '\0' ? d : "/tmp";
  }();
  const std::string path = std::string(dir) + "/bpo-fuzz-" + std::to_string(getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

}  // namespace bpo::fuzz

#endif  // BPO_FUZZ_TEMP_FILE_H_
