#include "common/stable_hash.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace bpo {
namespace {

// Pinned values: a change here changes every run's sampling seeds and tie
// breaks, so that a run could no longer be reproduced by a later build.
TEST(StableHashTest, ValuesArePinned) {
  EXPECT_EQ(StableHash(""), Mix64(1469598103934665603ull));
  EXPECT_EQ(Mix64(0), 0u);
  EXPECT_EQ(Mix64(1), 0x5692161d100b05e5ull);
  EXPECT_EQ(StableHash("p0-3"), 0x90204dce24dec147ull);
  EXPECT_EQ(StableCombine({7, 1, 2}), 0xfacb60304406d02dull);
}

TEST(StableHashTest, OrderAndEveryValueMatter) {
  EXPECT_NE(StableCombine({1, 2}), StableCombine({2, 1}));
  EXPECT_NE(StableCombine({1, 2}), StableCombine({1, 2, 0}));
  EXPECT_NE(StableHash("p0-3"), StableHash("p0-4"));
  std::set<uint64_t> seen;
  for (uint64_t seed = 0; seed < 4; ++seed)
    for (uint64_t version = 0; version < 64; ++version)
      seen.insert(StableCombine({seed, StableHash("p1-9"), version}));
  EXPECT_EQ(seen.size(), 4u * 64u);
}

}  // namespace
}  // namespace bpo
