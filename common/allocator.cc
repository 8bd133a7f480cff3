#include "common/allocator.h"

#include <malloc.h>

#include <climits>

namespace bpo {

bool TuneAllocatorForTensors() {
  bool ok = mallopt(M_MMAP_THRESHOLD, INT_MAX) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 && ok;
  ok = mallopt(M_TOP_PAD, 512 << 20) == 1 && ok;
  return ok;
}

}  // namespace bpo
