// Lock-free questions about pool blocks by address, for code that copies into or out of
// pool objects (pmalloc_check_object, the hardened-usercopy check). Readers race the pool's
// allocations and frees: they read the block map's words and bump as relaxed atomics
// (block_map.h), so a racing pfree or pmalloc may make an answer stale, but a lookup never
// reads outside the area's metadata.
#ifndef PMALLOC_CORE_OBJECT_CHECK_H_
#define PMALLOC_CORE_OBJECT_CHECK_H_

#include <cstddef>
#include <cstdint>

namespace pmalloc::internal {

struct Area;

// The live block holding the byte at `p` of area `a`: its start and usable size, or false
// when that byte is in a free block, past the area's bump or in an area whose block map is
// not published yet. REQUIRES: a->Contains(p), and `a` stays registered (its pool is not
// being destroyed). Cost: a bitmap scan back to the block's start (one word per 512 bytes).
bool LiveBlockAt(const Area* a, uintptr_t p, uintptr_t* start, size_t* size);

// What [p, p + n) touches.
enum class ObjectCheck {
  kNotPool,  // no byte of a live pool area (heap, stack, statics, guard gaps, destroyed pools)
  kInside,   // every byte inside one live allocation
  kCrosses,  // pool memory, but not inside one live allocation
};
// Lock-free; O(1) when p is in an area (plus LiveBlockAt's scan), otherwise one window
// table load per 64 KiB granule of the range that lies in the pool window. n == 0: kNotPool.
ObjectCheck CheckObject(const void* p, size_t n);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_OBJECT_CHECK_H_
