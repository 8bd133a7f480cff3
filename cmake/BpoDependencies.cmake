# Finds every third-party dependency. scripts/setup-deps installs them all from
# Debian's packages; any LibTorch 2.x can be used instead of Debian's 1.13 by
# putting its cmake folder first on CMAKE_PREFIX_PATH (docs/development.md).

find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(OpenSSL REQUIRED)  # sha256, the run CA's certificates, HTTPS
find_package(nlohmann_json CONFIG REQUIRED)
find_package(Gloo CONFIG REQUIRED)
find_package(Torch REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

if(Torch_VERSION VERSION_LESS 1.13)
  message(FATAL_ERROR "LibTorch ${Torch_VERSION} is too old: bpo needs 1.13 or 2.x")
endif()

# LibTorch's imported targets carry its ABI flag; keep it in one interface target.
add_library(bpo_torch INTERFACE)
target_link_libraries(bpo_torch INTERFACE ${TORCH_LIBRARIES})
add_library(bpo::torch ALIAS bpo_torch)

# NCCL ships with the CUDA toolkit here (nvcc on PATH). AUTO uses it when found.
set(BPO_HAVE_NCCL OFF)
if(NOT BPO_WITH_NCCL STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    find_path(BPO_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV NCCL_HOME
              PATH_SUFFIXES include)
    find_library(BPO_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ENV NCCL_HOME
                 PATH_SUFFIXES lib lib64)
  endif()
  if(BPO_NCCL_INCLUDE_DIR AND BPO_NCCL_LIBRARY)
    set(BPO_HAVE_NCCL ON)
    add_library(bpo_nccl INTERFACE)
    target_include_directories(bpo_nccl SYSTEM INTERFACE ${BPO_NCCL_INCLUDE_DIR})
    target_link_libraries(bpo_nccl INTERFACE ${BPO_NCCL_LIBRARY} CUDA::cudart)
    add_library(bpo::nccl ALIAS bpo_nccl)
  elseif(BPO_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "BPO_WITH_NCCL=ON but NCCL was not found: install the CUDA "
                        "toolkit with NCCL or set NCCL_HOME")
  endif()
endif()

if(BPO_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
if(BPO_BUILD_BENCHMARKS)
  find_package(benchmark CONFIG REQUIRED)
endif()
