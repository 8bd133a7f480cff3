// Hashes that are the same in every process, on every run and machine: the
// seeds a run derives from its config (which prompts, which random state a
// pair is sampled with, how a tie is broken) must not depend on where a
// process happened to be loaded. absl::Hash and std::hash are salted or
// unspecified across builds and must not be used for these.
#ifndef BPO_COMMON_STABLE_HASH_H_
#define BPO_COMMON_STABLE_HASH_H_

#include <cstdint>
#include <initializer_list>

#include "absl/strings/string_view.h"

namespace bpo {

// SplitMix64's finalizer: a bijection on 64 bits with good avalanche.
constexpr uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// FNV-1a over the bytes, then Mix64.
inline uint64_t StableHash(absl::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return Mix64(h);
}

// An order-dependent combination of values, e.g. (run seed, pair, version).
inline uint64_t StableCombine(std::initializer_list<uint64_t> values) {
  uint64_t h = 0x2545f4914f6cdd1dull;
  for (uint64_t v : values) h = Mix64(h ^ Mix64(v + 0x9e3779b97f4a7c15ull));
  return h;
}

}  // namespace bpo

#endif  // BPO_COMMON_STABLE_HASH_H_
