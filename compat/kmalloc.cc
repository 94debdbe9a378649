// kmalloc & co (see pmalloc/compat/slab.h). Pool memory goes through the public pool API;
// everything else is the process heap (malloc/free: pmalloc's own face, or whichever
// allocator comes first in symbol lookup). Whether a pointer is pool memory is decided only by
// where it lies (the pool window, pmalloc_pool_of()), so memory that
// PMALLOC_CONF=disable:true served from the heap is freed to the heap too.
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "compat/gfp_pool.h"
#include "core/window.h"
#include "pmalloc/compat/slab.h"

namespace {

bool IsZeroOrNull(const void* p) { return ZERO_OR_NULL_PTR(p); }

// Allocates from `pool` (nullptr: the heap). REQUIRES: size > 0.
void* AllocateIn(pmalloc_pool* pool, size_t size, bool zero) {
  if (pool == nullptr) {
    void* p = zero ? calloc(1, size) : malloc(size);
    if (p == nullptr) errno = ENOMEM;
    return p;
  }
  return zero ? pzalloc(pool, size) : pmalloc(pool, size);
}

size_t UsableSize(pmalloc_pool* pool, const void* p) {
  return pool != nullptr ? pmalloc_usable_size(p) : malloc_usable_size(const_cast<void*>(p));
}

void FreeIn(pmalloc_pool* pool, const void* p) {
  if (pool != nullptr) {
    pfree(pool, p);
  } else {
    free(const_cast<void*>(p));
  }
}

}  // namespace

extern "C" {

void* pmalloc_kmalloc(size_t size, gfp_t flags) {
  pmalloc_pool* pool;
  if (!pmalloc::internal::PoolForGfp(flags, &pool)) return nullptr;
  if (size == 0) return ZERO_SIZE_PTR;
  return AllocateIn(pool, size, (flags & __GFP_ZERO) != 0);
}

void pmalloc_kfree(const void* p) {
  if (IsZeroOrNull(p)) return;
  // Heap memory (the common case) is decided by the inline window check alone.
  if (pmalloc::internal::Window::AreaOf(p) == nullptr) {
    free(const_cast<void*>(p));
    return;
  }
  FreeIn(pmalloc_pool_of(p), p);
}

size_t pmalloc_ksize(const void* p) {
  if (IsZeroOrNull(p)) return 0;
  return UsableSize(pmalloc_pool_of(p), p);
}

void pmalloc_kfree_sensitive(const void* p) {
  if (IsZeroOrNull(p)) return;
  pmalloc_pool* pool = pmalloc_pool_of(p);
  // A read-only object cannot be zeroed (the write would fault); pfree only un-accounts it.
  if (pool == nullptr || !pmalloc_is_protected(p)) {
    explicit_bzero(const_cast<void*>(p), UsableSize(pool, p));
  }
  FreeIn(pool, p);
}

void* pmalloc_krealloc(const void* p, size_t new_size, gfp_t flags) {
  if (IsZeroOrNull(p)) return pmalloc_kmalloc(new_size, flags);
  pmalloc_pool* dst;
  if (!pmalloc::internal::PoolForGfp(flags, &dst)) return nullptr;
  if (new_size == 0) {
    pmalloc_kfree(p);
    return ZERO_SIZE_PTR;
  }
  pmalloc_pool* src = pmalloc_pool_of(p);
  // No pool bit: the memory keeps its home (pool memory stays in its pool).
  if ((flags & PMALLOC_GFP_POOL_MASK) == 0) dst = src;
  const bool zero = (flags & __GFP_ZERO) != 0;
  const size_t old_size = UsableSize(src, p);
  if (dst == src && new_size <= old_size) return const_cast<void*>(p);
  if (dst == nullptr && src == nullptr) {
    char* q = static_cast<char*>(realloc(const_cast<void*>(p), new_size));
    if (q == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
    if (zero) memset(q + old_size, 0, malloc_usable_size(q) - old_size);
    return q;
  }
  char* q = static_cast<char*>(AllocateIn(dst, new_size, zero));
  if (q == nullptr) return nullptr;
  memcpy(q, p, std::min(old_size, new_size));
  FreeIn(src, p);
  return q;
}

void* pmalloc_kmemdup(const void* src, size_t len, gfp_t flags) {
  if (len == 0) return pmalloc_kmalloc(0, flags);
  if (src == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  void* copy = pmalloc_kmalloc(len, flags);
  if (copy != nullptr) memcpy(copy, src, len);
  return copy;
}

char* pmalloc_kstrndup(const char* s, size_t max, gfp_t flags) {
  if (s == nullptr) return nullptr;
  const size_t len = strnlen(s, max);
  char* copy = static_cast<char*>(pmalloc_kmalloc(len + 1, flags));
  if (copy == nullptr) return nullptr;
  memcpy(copy, s, len);
  copy[len] = '\0';
  return copy;
}

char* pmalloc_kstrdup(const char* s, gfp_t flags) {
  if (s == nullptr) return nullptr;
  return static_cast<char*>(pmalloc_kmemdup(s, strlen(s) + 1, flags));
}

}  // extern "C"
