// The pool allocator's view of one area (see window.h for the window's): which units start
// a block, which blocks are live, how far the area was ever handed out. Owned by the pool
// (Pool::OpenArea builds it, Pool::Release frees it) and reached from the window's Area
// record through Area::blocks, so lock-free lookups by pointer (fault reports) find it.
// Lives off pool pages, like all allocator metadata.
#ifndef PMALLOC_CORE_BLOCK_MAP_H_
#define PMALLOC_CORE_BLOCK_MAP_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "core/window.h"

namespace pmalloc::internal {

// Allocation unit inside areas: block starts and sizes are multiples of it.
inline constexpr size_t kUnitShift = 3;
inline constexpr size_t kUnit = size_t{1} << kUnitShift;

inline bool TestBit(const uint64_t* bits, size_t i) { return (bits[i >> 6] >> (i & 63)) & 1; }
inline void SetBit(uint64_t* bits, size_t i) { bits[i >> 6] |= uint64_t{1} << (i & 63); }
inline void ClearBit(uint64_t* bits, size_t i) { bits[i >> 6] &= ~(uint64_t{1} << (i & 63)); }

// Index of the first set bit in [from, limit), or limit.
inline size_t NextSetBit(const uint64_t* bits, size_t from, size_t limit) {
  size_t i = from;
  while (i < limit) {
    uint64_t word = bits[i >> 6] >> (i & 63);
    if (word != 0) return std::min(limit, i + static_cast<size_t>(__builtin_ctzll(word)));
    i = (i | 63) + 1;
  }
  return limit;
}

// A start bit and a live bit per unit of the area. Guarded by the owning pool's lock,
// except where a comment says a racy read is fine.
struct BlockMap {
  Area* area = nullptr;  // the window's record of the same area
  size_t bump = 0;       // bytes from area->base ever handed out
  uint64_t* start_bits = nullptr;
  uint64_t* live_bits = nullptr;
  BlockMap* next = nullptr;  // the owning pool's list

  // Size in bytes of the block whose start bit is at unit `i`: up to the next block start
  // or `bump` (passed in so that lock-free callers can use a racy snapshot).
  size_t BlockBytes(size_t i, size_t bump_snapshot) const {
    const size_t end = NextSetBit(start_bits, i + 1, bump_snapshot >> kUnitShift);
    return (end - i) << kUnitShift;
  }
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_BLOCK_MAP_H_
