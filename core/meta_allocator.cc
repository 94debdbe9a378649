#include "core/meta_allocator.h"

#include <jemalloc/jemalloc.h>

namespace pmalloc::internal {

void* MetaAlloc(size_t size, bool zero) {
  return mallocx(size == 0 ? 1 : size, zero ? MALLOCX_ZERO : 0);
}

void MetaFree(void* p) {
  if (p != nullptr) dallocx(p, 0);
}

}  // namespace pmalloc::internal
