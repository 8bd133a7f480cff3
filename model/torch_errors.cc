#include "model/torch_errors.h"

#include <c10/util/Exception.h>

#include <exception>
#include <new>
#include <stdexcept>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bpo::model {

absl::Status StatusFromCurrentException(absl::string_view context) {
  try {
    throw;
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (absl::StrContains(what, "out of memory") ||
        absl::StrContains(what, "can't allocate memory") ||
        absl::StrContains(what, "not enough memory")) {
      return absl::ResourceExhaustedError(absl::StrCat(context, ": out of memory: ", what));
    }
    return absl::InternalError(absl::StrCat(context, ": ", what));
  } catch (const std::bad_alloc& e) {
    return absl::ResourceExhaustedError(absl::StrCat(context, ": out of memory (", e.what(), ")"));
  } catch (const std::length_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(context, ": a size beyond what can be allocated (", e.what(), ")"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(context, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(context, ": an unknown exception"));
  }
}

}  // namespace bpo::model
