#include "preload/route.h"

#include <errno.h>
#include <string.h>

#include <new>

#include "core/pool.h"
#include "core/sites.h"

namespace pmalloc::internal::route {

void* TaggedAlloc(Pool* pool, size_t size, size_t align, bool zero) noexcept {
  return pool->Allocate(size, align, zero);
}

void* TaggedCalloc(Pool* pool, size_t n, size_t size) noexcept {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return pool->Allocate(bytes, 0, true);
}

void* ReallocPoolBlock(void* p, size_t size) noexcept {
  const SiteId site = BlockSite(p);  // 0 unless rule-tagged (one load when there are none)
  if (site == 0 || size == 0) return PoolRealloc(p, size);
  Area* a = Window::AreaOf(p);
  if (a != nullptr && !a->writable.load(std::memory_order_acquire)) {
    const size_t old_size = Pool::UsableSize(p);
    if (old_size == 0 || size > kMaxObjectSize) return PoolRealloc(p, size);  // its errors
    void* q = je.malloc.load(std::memory_order_relaxed)(size);
    if (q == nullptr) return nullptr;  // ENOMEM; p untouched
    memcpy(q, p, old_size < size ? old_size : size);
    a->pool->Free(p);  // after protection: only un-accounted (and its site forgotten)
    return q;
  }
  void* q = PoolRealloc(p, size);
  if (q != nullptr && q != p) RecordBlockSite(q, site);
  return q;
}

void* ReallocEdge(void* p, size_t size) noexcept {
  if (size == 0) {
    je.free.load(std::memory_order_relaxed)(p);
  } else {
    errno = ENOMEM;  // p untouched
  }
  return nullptr;
}

void* TaggedNew(Pool* pool, size_t size, size_t align) {
  void* p = pool->Allocate(size, align, false);
  return p != nullptr ? p : NewFailed(size, align, false);
}

void* TaggedNewNothrow(Pool* pool, size_t size, size_t align) noexcept {
  void* p = pool->Allocate(size, align, false);
  return p != nullptr ? p : NewFailed(size, align, true);
}

void* NewFailed(size_t size, size_t align, bool nothrow) {
  for (;;) {
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    if (nothrow) {
      try {
        handler();
      } catch (const std::bad_alloc&) {
        return nullptr;
      }
    } else {
      handler();
    }
    void* p = align == 0 ? Malloc(size) : Memalign(align, size);
    if (p != nullptr) return p;
  }
}

}  // namespace pmalloc::internal::route
