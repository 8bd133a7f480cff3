# Finds every third-party dependency. scripts/setup-deps installs them all from
# Debian's packages. LibTorch is Debian's CPU-only 1.13 unless BPO_TORCH_ROOT
# names another one: the `torch` folder of a PyTorch wheel (scripts/setup-deps
# --torch=pip installs the pinned CUDA wheel into .deps/torch, and
# scripts/build-torch-pip builds and tests against it; docs/gpu.md).

set(BPO_TORCH_ROOT "" CACHE PATH
    "A LibTorch other than Debian's: a PyTorch wheel's torch/ folder or an unpacked LibTorch")

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
if(BPO_TORCH_ROOT)
  get_filename_component(BPO_TORCH_ROOT "${BPO_TORCH_ROOT}" ABSOLUTE)
  if(NOT EXISTS "${BPO_TORCH_ROOT}/share/cmake/Torch/TorchConfig.cmake")
    message(FATAL_ERROR "BPO_TORCH_ROOT=${BPO_TORCH_ROOT}: no share/cmake/Torch/TorchConfig.cmake "
                        "there (expected a PyTorch wheel's torch/ folder or an unpacked LibTorch)")
  endif()
  # Its lib/ is searched before the system's: TorchConfig's find_library calls
  # would otherwise take Debian's libc10.so/libtorch.so when libtorch-dev is
  # installed too.
  list(PREPEND CMAKE_PREFIX_PATH "${BPO_TORCH_ROOT}")
  find_package(Torch REQUIRED CONFIG PATHS "${BPO_TORCH_ROOT}/share/cmake/Torch" NO_DEFAULT_PATH)
else()
  find_package(Torch REQUIRED)
endif()
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

if(Torch_VERSION VERSION_LESS 1.13)
  message(FATAL_ERROR "LibTorch ${Torch_VERSION} is too old: bpo needs 1.13 or 2.x")
endif()

# LibTorch's imported targets carry its ABI flag; keep it in one interface target.
add_library(bpo_torch INTERFACE)
target_link_libraries(bpo_torch INTERFACE ${TORCH_LIBRARIES})
add_library(bpo::torch ALIAS bpo_torch)

# BPO_TORCH_HAS_CUDA: this LibTorch was built with CUDA (the wheel's is; Debian's
# is not). Code that uses LibTorch's CUDA API (streams, the caching allocator)
# is compiled only then.
set(BPO_TORCH_HAS_CUDA OFF)
if(TARGET torch_cuda)
  set(BPO_TORCH_HAS_CUDA ON)
  target_compile_definitions(bpo_torch INTERFACE BPO_TORCH_HAS_CUDA)
endif()

if(BPO_TORCH_ROOT)
  include(BpoTorchHygiene)
  bpo_torch_hygiene("${BPO_TORCH_ROOT}")
endif()

# NCCL ships with the CUDA toolkit here (nvcc on PATH). AUTO uses it when found.
set(BPO_HAVE_NCCL OFF)
if(NOT BPO_WITH_NCCL STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  # A CUDA LibTorch from a wheel brings its own NCCL (nvidia-nccl): use that
  # one, so that a process holds one NCCL whichever library loads it first.
  set(_bpo_nccl_hints "")
  if(BPO_TORCH_HAS_CUDA AND BPO_TORCH_ROOT)
    set(_bpo_nccl_hints "${BPO_TORCH_ROOT}/../nvidia/nccl")
  endif()
  if(CUDAToolkit_FOUND)
    find_path(BPO_NCCL_INCLUDE_DIR nccl.h HINTS ${_bpo_nccl_hints} ${CUDAToolkit_INCLUDE_DIRS}
              ENV NCCL_HOME PATH_SUFFIXES include)
    find_library(BPO_NCCL_LIBRARY NAMES nccl libnccl.so.2 NAMES_PER_DIR
                 HINTS ${_bpo_nccl_hints} ${CUDAToolkit_LIBRARY_DIR} ENV NCCL_HOME
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
