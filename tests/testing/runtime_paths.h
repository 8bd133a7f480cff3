// Force-included (-include) into the tests that also run from the folder
// scripts/gpu-bundle makes, on another machine (label gpu, and the `bpo local`
// test helpers): BPO_SOURCE_DIR and BPO_BINARY are read at run time, from
// $BPO_TEST_SOURCE_DIR and $BPO_TEST_BINARY when set, else this build's paths
// (cmake/BpoTargets.cmake, bpo_relocatable_paths).
#ifndef BPO_TESTS_TESTING_RUNTIME_PATHS_H_
#define BPO_TESTS_TESTING_RUNTIME_PATHS_H_

#include <cstdlib>

namespace bpo::testing {

inline const char* RuntimePath(const char* variable, const char* built) {
  const char* value = std::getenv(variable);
  return value != nullptr && *value != '\0' ? value : built;
}

}  // namespace bpo::testing

#endif  // BPO_TESTS_TESTING_RUNTIME_PATHS_H_
