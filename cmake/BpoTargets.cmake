# Helpers that give every bpo library, binary and test the same shape.

# bpo_target_defaults(TARGET): warnings and the repository root as include dir.
function(bpo_target_defaults target)
  target_compile_options(${target} PRIVATE ${BPO_WARNING_FLAGS})
endfunction()

# bpo_library(NAME SRCS ... DEPS ...): library bpo_NAME with alias bpo::NAME.
function(bpo_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(bpo_${name} STATIC ${ARG_SRCS})
  add_library(bpo::${name} ALIAS bpo_${name})
  target_include_directories(bpo_${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(bpo_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  bpo_target_defaults(bpo_${name})
endfunction()

# bpo_relocatable_paths(TARGET [BINARY path]): BPO_SOURCE_DIR (and BPO_BINARY)
# read at run time from $BPO_TEST_SOURCE_DIR ($BPO_TEST_BINARY) when set, else
# this build's paths, so that the test runs from scripts/gpu-bundle's folder on
# another machine (tests/testing/runtime_paths.h).
function(bpo_relocatable_paths target)
  cmake_parse_arguments(ARG "" "BINARY" "" ${ARGN})
  target_compile_definitions(${target} PRIVATE
      "BPO_SOURCE_DIR=::bpo::testing::RuntimePath(\"BPO_TEST_SOURCE_DIR\", \"${PROJECT_SOURCE_DIR}\")")
  if(ARG_BINARY)
    target_compile_definitions(${target} PRIVATE
        "BPO_BINARY=::bpo::testing::RuntimePath(\"BPO_TEST_BINARY\", \"${ARG_BINARY}\")")
  endif()
  target_compile_options(${target} PRIVATE
      -include ${PROJECT_SOURCE_DIR}/tests/testing/runtime_paths.h)
endfunction()

# bpo_test(NAME SRCS ... DEPS ... LABELS ... [TIMEOUT s]): one GoogleTest binary
# registered with ctest under the given labels (unit, integration, gpu, slow).
# Tests labelled gpu get bpo_relocatable_paths (scripts/gpu-bundle runs them).
function(bpo_test name)
  if(NOT BPO_BUILD_TESTS)
    return()
  endif()
  # LAUNCHER: a command line the test binary runs under (e.g. unshare).
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS;LAUNCHER" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  target_compile_definitions(${name} PRIVATE BPO_BINARY_DIR="${PROJECT_BINARY_DIR}")
  if("gpu" IN_LIST ARG_LABELS)
    bpo_relocatable_paths(${name})
  else()
    target_compile_definitions(${name} PRIVATE BPO_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  endif()
  bpo_target_defaults(${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_test(NAME ${name} COMMAND ${ARG_LAUNCHER} $<TARGET_FILE:${name}>)
  # ctest runs tests in parallel (-j nproc): one BLAS/OpenMP thread per test
  # keeps them from oversubscribing the cores (and spin-waiting on each other).
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
                       ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
endfunction()

# bpo_benchmark(NAME SRCS ... DEPS ...): a Google Benchmark binary in bin/.
function(bpo_benchmark name)
  if(NOT BPO_BUILD_BENCHMARKS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark_main)
  target_compile_definitions(${name} PRIVATE BPO_SOURCE_DIR_FOR_BENCH="${PROJECT_SOURCE_DIR}")
  bpo_target_defaults(${name})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/bin")
endfunction()
