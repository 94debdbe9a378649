// PMALLOC_CONF=disable:true serves pools from jemalloc (c_api.cc). "No protection" must not
// mean "no checks": this side table remembers which pool each such block belongs to and
// whether it is live, so pfree keeps its fixed messages for a double free, a pointer of
// another pool and a pointer that was never allocated (Pool::BadFree). Not a hot path: one
// global lock, O(log n) per call in the blocks the table remembers.
#ifndef PMALLOC_CORE_DISABLED_BLOCKS_H_
#define PMALLOC_CORE_DISABLED_BLOCKS_H_

#include "core/pool.h"

namespace pmalloc::internal::disabled_blocks {

// Records `p` (a fresh jemalloc block) as a live block of `pool`. On a metadata allocation
// failure frees p and returns nullptr with errno ENOMEM; returns p otherwise (nullptr in,
// nullptr out).
void* Track(Pool* pool, void* p);

// Forgets the live block `p` of `pool` and frees it; aborts through pool->BadFree on a
// double free or a pointer that is not a live block of this pool. REQUIRES: p != nullptr.
void Free(Pool* pool, const void* p);

// Forgets every block of a pool that is being destroyed.
void ForgetPool(const Pool* pool);

// Fork support (held across fork by the registry).
void LockForFork();
void UnlockAfterFork();

}  // namespace pmalloc::internal::disabled_blocks

#endif  // PMALLOC_CORE_DISABLED_BLOCKS_H_
