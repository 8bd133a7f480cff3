// The bpo version, from CMake's project(VERSION).
#ifndef BPO_COMMON_VERSION_H_
#define BPO_COMMON_VERSION_H_

namespace bpo {
inline constexpr char kBpoVersion[] = BPO_VERSION_STRING;
}  // namespace bpo

#endif  // BPO_COMMON_VERSION_H_
