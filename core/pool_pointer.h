// Pool blocks named only by their pointer: the window finds the area, the area its pool.
// This is what the libc face (preload/route.h) needs from core/ when free, realloc or
// malloc_usable_size is handed a pointer inside the pool window.
#ifndef PMALLOC_CORE_POOL_POINTER_H_
#define PMALLOC_CORE_POOL_POINTER_H_

#include <cstddef>

namespace pmalloc::internal {

// Frees the pool block at p. Aborts with "pmalloc: free(): invalid pointer ..." when p is
// in no live pool area, and with the pool's fixed message on an invalid or double free.
// REQUIRES: Window::Contains(p).
void PoolFree(void* p) noexcept;

// glibc realloc of a pool block, which stays in its pool: size 0 frees it and returns
// nullptr; nullptr with errno EPERM when its area is read-only (block untouched); a block
// of at least `size` bytes is returned as is; otherwise a new block from the same pool
// (nullptr and errno from the pool on failure, old block untouched). Aborts like PoolFree
// ("realloc()") on an invalid pointer. REQUIRES: Window::Contains(p).
void* PoolRealloc(void* p, size_t size) noexcept;

// Usable size of the live pool block starting at p, or 0. Takes the pool's lock.
size_t PoolUsableSize(const void* p) noexcept;

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_POOL_POINTER_H_
