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
#include "core/config.h"
#include "core/pool.h"
#include "core/window.h"
#include "pmalloc/compat/slab.h"

namespace {

bool IsZeroOrNull(const void* p) { return ZERO_OR_NULL_PTR(p); }

// Allocates from `pool` (nullptr: the heap), zeroed if `zero`, with `copy_len` bytes of
// `copy_from` at its start. Into a pool both happen under the pool lock (Pool::Allocate):
// once it is released another thread's lockdown may make the block read-only, and a copy
// after that would fault inside pmalloc. REQUIRES: size > 0, copy_len <= size.
void* AllocateIn(pmalloc_pool* pool, size_t size, bool zero, const void* copy_from = nullptr,
                 size_t copy_len = 0) {
  void* p;
  if (pool == nullptr) {
    p = zero ? calloc(1, size) : malloc(size);
    if (p == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
  } else if (!pmalloc::internal::GetConfig().disable) {
    auto* internal = reinterpret_cast<pmalloc::internal::Pool*>(pool);  // handles are Pools
    if (!internal->Valid()) {
      errno = EINVAL;
      return nullptr;
    }
    return internal->Allocate(size, 0, zero, copy_from, copy_len);
  } else {
    // disable:true: plain heap memory that is never protected, so the copy may follow.
    p = zero ? pzalloc(pool, size) : pmalloc(pool, size);
    if (p == nullptr) return nullptr;
  }
  if (copy_len != 0) memcpy(p, copy_from, copy_len);
  return p;
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
  pmalloc::internal::Area* a = pmalloc::internal::Window::AreaOf(p);
  if (a == nullptr) {
    explicit_bzero(const_cast<void*>(p), malloc_usable_size(const_cast<void*>(p)));
    free(const_cast<void*>(p));
    return;
  }
  // A read-only object cannot be zeroed (the write would fault): the pool zeroes the block
  // under its lock only while it is writable, since another thread's lockdown may protect
  // it at any moment, and otherwise only un-accounts it.
  a->pool->Free(p, /*wipe=*/true);
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
  void* q = AllocateIn(dst, new_size, zero, p, std::min(old_size, new_size));
  if (q == nullptr) return nullptr;
  FreeIn(src, p);
  return q;
}

void* pmalloc_kmemdup(const void* src, size_t len, gfp_t flags) {
  if (len == 0) return pmalloc_kmalloc(0, flags);
  if (src == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  pmalloc_pool* pool;
  if (!pmalloc::internal::PoolForGfp(flags, &pool)) return nullptr;
  return AllocateIn(pool, len, false, src, len);
}

char* pmalloc_kstrndup(const char* s, size_t max, gfp_t flags) {
  if (s == nullptr) return nullptr;
  const size_t len = strnlen(s, max);
  pmalloc_pool* pool;
  if (!pmalloc::internal::PoolForGfp(flags, &pool)) return nullptr;
  // Zeroed, then the len bytes: the terminating NUL is written under the pool lock too.
  return static_cast<char*>(AllocateIn(pool, len + 1, true, s, len));
}

char* pmalloc_kstrdup(const char* s, gfp_t flags) {
  if (s == nullptr) return nullptr;
  return static_cast<char*>(pmalloc_kmemdup(s, strlen(s) + 1, flags));
}

}  // extern "C"
