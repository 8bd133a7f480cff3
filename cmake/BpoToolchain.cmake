# Compiler launcher, warnings and sanitizers for every bpo target.

if(BPO_USE_CCACHE)
  find_program(BPO_CCACHE ccache)
  if(BPO_CCACHE)
    set(CMAKE_C_COMPILER_LAUNCHER "${BPO_CCACHE}")
    set(CMAKE_CXX_COMPILER_LAUNCHER "${BPO_CCACHE}")
    set(CMAKE_CUDA_COMPILER_LAUNCHER "${BPO_CCACHE}")
  endif()
endif()

set(_bpo_sanitizers address undefined thread)
if(BPO_SANITIZE AND NOT BPO_SANITIZE IN_LIST _bpo_sanitizers)
  message(FATAL_ERROR "BPO_SANITIZE='${BPO_SANITIZE}': expected one of ${_bpo_sanitizers}")
endif()

# Applied to bpo's own targets only (see bpo_target_defaults).
set(BPO_WARNING_FLAGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
set(BPO_SANITIZE_FLAGS "")
if(BPO_SANITIZE)
  set(BPO_SANITIZE_FLAGS -fsanitize=${BPO_SANITIZE} -fno-omit-frame-pointer)
  if(BPO_SANITIZE STREQUAL "undefined")
    list(APPEND BPO_SANITIZE_FLAGS -fno-sanitize-recover=undefined)
  endif()
  add_compile_options(${BPO_SANITIZE_FLAGS})
  add_link_options(${BPO_SANITIZE_FLAGS})
endif()

# Fuzz builds (BPO_BUILD_FUZZERS, clang only): every bpo target is compiled with
# libFuzzer's coverage hooks and ASan + UBSan, so the fuzzers see and check the
# parsers' own code; only the fuzzer executables link libFuzzer's main
# (fuzz/CMakeLists.txt). Use a build directory of its own (scripts/fuzz).
set(BPO_FUZZ_FLAGS "")
if(BPO_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "BPO_BUILD_FUZZERS needs clang: CC=clang CXX=clang++ cmake ...")
  endif()
  if(BPO_SANITIZE)
    message(FATAL_ERROR "BPO_BUILD_FUZZERS brings its own sanitizers: leave BPO_SANITIZE empty")
  endif()
  set(BPO_FUZZ_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                     -fno-omit-frame-pointer)
  add_compile_options(${BPO_FUZZ_FLAGS} -fsanitize=fuzzer-no-link)
  add_link_options(${BPO_FUZZ_FLAGS})
endif()
