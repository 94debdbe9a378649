// The C allocation entry points of glibc, as one-line forwarders into preload/route.h. The
// glibc contract (2.36, plus the aligned_alloc check of 2.38) lives here and only here:
//  - failure returns NULL with errno ENOMEM (EPERM from a protected, non-growable scope
//    pool); calloc and reallocarray fail with ENOMEM when n * size overflows;
//  - malloc(0) and calloc(0, n) return a unique pointer; realloc(p, 0) frees p and returns
//    NULL; realloc(NULL, n) is malloc(n);
//  - posix_memalign returns EINVAL unless the alignment is a power-of-two multiple of
//    sizeof(void *); aligned_alloc sets EINVAL unless it is a power of two; memalign rounds
//    a non-power-of-two up and sets EINVAL only beyond SIZE_MAX / 2 + 1.
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/platform.h"
#include "pmalloc/pmalloc.h"
#include "preload/route.h"

namespace route = pmalloc::internal::route;

namespace {

bool IsPowerOfTwo(size_t v) { return v != 0 && (v & (v - 1)) == 0; }

// glibc's _mid_memalign, except that alignments up to 16 are not plain malloc: jemalloc's
// malloc of fewer than 16 bytes is only 8-aligned (route::Memalign asks for enough bytes).
void* MemalignGlibc(size_t align, size_t size) {
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return nullptr;
  }
  if (align == 0) align = 1;  // memalign(0, n) is malloc(n)
  if (!IsPowerOfTwo(align)) align = size_t{1} << (64 - __builtin_clzl(align));
  return route::Memalign(align, size);
}

}  // namespace

extern "C" {

PMALLOC_EXPORT void* malloc(size_t size) noexcept { return route::Malloc(size); }
PMALLOC_EXPORT void free(void* p) noexcept { route::Free(p); }
PMALLOC_EXPORT void* calloc(size_t n, size_t size) noexcept { return route::Calloc(n, size); }
PMALLOC_EXPORT void* realloc(void* p, size_t size) noexcept { return route::Realloc(p, size); }

PMALLOC_EXPORT void* reallocarray(void* p, size_t n, size_t size) noexcept {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return route::Realloc(p, bytes);
}

PMALLOC_EXPORT int posix_memalign(void** out, size_t align, size_t size) noexcept {
  if (align % sizeof(void*) != 0 || !IsPowerOfTwo(align / sizeof(void*))) return EINVAL;
  const int saved = errno;
  void* p = route::Memalign(align, size);
  if (p == nullptr) {
    const int err = errno;
    errno = saved;
    return err != 0 ? err : ENOMEM;
  }
  *out = p;
  return 0;
}

PMALLOC_EXPORT void* aligned_alloc(size_t align, size_t size) noexcept {
  if (!IsPowerOfTwo(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return MemalignGlibc(align, size);
}

PMALLOC_EXPORT void* memalign(size_t align, size_t size) noexcept {
  return MemalignGlibc(align, size);
}

PMALLOC_EXPORT void* valloc(size_t size) noexcept {
  return route::Memalign(pmalloc::internal::platform::PageSize(), size);
}

PMALLOC_EXPORT void* pvalloc(size_t size) noexcept {
  const size_t page = pmalloc::internal::platform::PageSize();
  size_t rounded;
  if (__builtin_add_overflow(size, page - 1, &rounded)) {
    errno = ENOMEM;
    return nullptr;
  }
  return route::Memalign(page, rounded & ~(page - 1));
}

PMALLOC_EXPORT size_t malloc_usable_size(void* p) noexcept { return route::UsableSize(p); }

// Removed from glibc's API in 2.26 but still resolvable by old binaries.
PMALLOC_EXPORT void cfree(void* p) noexcept { route::Free(p); }

// glibc's internal names, used by some programs and libraries to reach "the real malloc".
PMALLOC_EXPORT void* __libc_malloc(size_t size) noexcept { return route::Malloc(size); }
PMALLOC_EXPORT void __libc_free(void* p) noexcept { route::Free(p); }
PMALLOC_EXPORT void* __libc_calloc(size_t n, size_t size) noexcept {
  return route::Calloc(n, size);
}
PMALLOC_EXPORT void* __libc_realloc(void* p, size_t size) noexcept {
  return route::Realloc(p, size);
}
PMALLOC_EXPORT void* __libc_memalign(size_t align, size_t size) noexcept {
  return MemalignGlibc(align, size);
}
PMALLOC_EXPORT void* __libc_valloc(size_t size) noexcept { return valloc(size); }
PMALLOC_EXPORT void* __libc_pvalloc(size_t size) noexcept { return pvalloc(size); }

}  // extern "C"
