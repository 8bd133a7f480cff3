// The one boundary where LibTorch's exceptions become absl::Status: model
// load and forward, generation, scoring and the optimizer steps run their
// tensor code inside CatchTorchErrors, so no exception crosses a module.
//
//   c10::Error mentioning "out of memory", std::bad_alloc,
//   std::length_error (a size no allocation can hold) -> RESOURCE_EXHAUSTED
//   any other c10::Error or std::exception             -> INTERNAL
//
// Messages start with `context` (what was being done, e.g. "CausalLm::Load
// dir/") and carry the exception's message without LibTorch's C++ backtrace.
#ifndef BPO_MODEL_TORCH_ERRORS_H_
#define BPO_MODEL_TORCH_ERRORS_H_

#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bpo::model {

// Must be called from inside a catch block: the Status for the exception
// being handled.
absl::Status StatusFromCurrentException(absl::string_view context);

// Runs `fn` (returning absl::Status or absl::StatusOr<T>) and returns its
// result, or the Status of the exception it threw.
template <typename F>
auto CatchTorchErrors(absl::string_view context, F&& fn) -> std::invoke_result_t<F&> {
  try {
    return fn();
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

}  // namespace bpo::model

#endif  // BPO_MODEL_TORCH_ERRORS_H_
