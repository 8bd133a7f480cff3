// Whole-file helpers shared by every process: content hashes, durable
// atomic writes and whole-file reads. Errors name the path.
#ifndef BPO_COMMON_FILES_H_
#define BPO_COMMON_FILES_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace bpo {

// Lowercase hex sha256 of `bytes` (OpenSSL libcrypto).
std::string Sha256Hex(std::string_view bytes);

// Writes `bytes` to `path` atomically and durably: a temporary file in the
// same directory, fsync, rename over `path`, fsync of the directory.
absl::Status WriteFileAtomically(const std::string& path, std::string_view bytes);

// fsync of directory `dir` (its entries: files renamed or created in it,
// subdirectories made in it). Errors name the directory.
absl::Status FsyncDirectory(const std::string& dir);

// The whole file; NOT_FOUND when it does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace bpo

#endif  // BPO_COMMON_FILES_H_
