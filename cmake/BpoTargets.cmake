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

# bpo_test(NAME SRCS ... DEPS ... LABELS ... [TIMEOUT s]): one GoogleTest binary
# registered with ctest under the given labels (unit, integration, gpu, slow).
function(bpo_test name)
  if(NOT BPO_BUILD_TESTS)
    return()
  endif()
  # LAUNCHER: a command line the test binary runs under (e.g. unshare).
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS;LAUNCHER" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
      BPO_SOURCE_DIR="${PROJECT_SOURCE_DIR}" BPO_BINARY_DIR="${PROJECT_BINARY_DIR}")
  bpo_target_defaults(${name})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
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
