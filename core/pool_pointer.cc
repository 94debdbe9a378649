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
  a->pool->FreeInArea(a, p);
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
  // Shrinking (or growing within the block, or into the free memory after it) keeps it.
  size_t old_size = 0;
  if (pool->ResizeInPlace(p, size, &old_size)) return p;
  if (old_size == 0) {
    // Protected since the check above (EPERM, as there), or not a live block.
    if (!a->writable.load(std::memory_order_acquire)) {
      errno = EPERM;
      return nullptr;
    }
    FatalNotInPool("realloc", p);
  }
  // A moved block gets room to grow by half again, so a buffer grown by small steps moves
  // O(log n) times, not once per step (the freed old blocks merge into reusable ranges).
  const size_t roomy = old_size + old_size / 2;
  // Copied under the pool lock, so a concurrent lockdown never protects a half-copied block.
  // `a`: a lockdown between the two locks makes the move fail with EPERM (block untouched).
  void* q = nullptr;
  if (size < roomy) {
    q = pool->Allocate(roomy, 0, false, p, old_size, a);
    if (q == nullptr && errno == EPERM) return nullptr;
  }
  if (q == nullptr) q = pool->Allocate(size, 0, false, p, old_size, a);
  if (q == nullptr) return nullptr;  // errno from the pool; old block untouched
  pool->Free(p);
  return q;
}

size_t PoolUsableSize(const void* p) noexcept { return Pool::UsableSize(p); }

}  // namespace pmalloc::internal
