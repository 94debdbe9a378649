// Internal to compat/: turns gfp flags into a destination pool.
#ifndef PMALLOC_COMPAT_GFP_POOL_H_
#define PMALLOC_COMPAT_GFP_POOL_H_

#include "pmalloc/compat/gfp.h"

namespace pmalloc::internal {

// Sets *pool to the pool `flags` routes to (nullptr: the heap) and returns true; false with
// errno EINVAL for two pool bits or an unassigned zone bit, ENOMEM when the default pool
// cannot be created. Lock-free.
bool PoolForGfp(gfp_t flags, pmalloc_pool** pool);

}  // namespace pmalloc::internal

#endif  // PMALLOC_COMPAT_GFP_POOL_H_
