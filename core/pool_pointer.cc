#include "core/pool_pointer.h"

#include <errno.h>
#include <string.h>

#include <atomic>

#include "core/fatal.h"
#include "core/pool.h"
#include "core/window.h"

namespace pmalloc::internal {

void PoolFree(void* p) noexcept {
  Area* a = Window::AreaOf(p);
  if (a == nullptr) FatalNotInPool("free", p);
  a->pool->Free(p);
}

void* PoolRealloc(void* p, size_t size) noexcept {
  Area* a = Window::AreaOf(p);
  if (a == nullptr) FatalNotInPool("realloc", p);
  Pool* pool = a->pool;
  if (size == 0) {
    pool->Free(p);
    return nullptr;
  }
  if (!a->writable.load(std::memory_order_acquire)) {
    errno = EPERM;  // a protected block is never moved nor freed by realloc
    return nullptr;
  }
  const size_t old_size = Pool::UsableSize(p);
  if (old_size == 0) FatalNotInPool("realloc", p);
  // Shrinking (or growing within the block) keeps the block; the pool has no in-place split.
  if (size <= old_size) return p;
  void* q = pool->Allocate(size, 0, false);
  if (q == nullptr) return nullptr;  // errno from the pool; old block untouched
  memcpy(q, p, old_size);
  pool->Free(p);
  return q;
}

size_t PoolUsableSize(const void* p) noexcept { return Pool::UsableSize(p); }

}  // namespace pmalloc::internal
