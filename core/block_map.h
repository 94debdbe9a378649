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

// Concurrent readers. Block map words, BlockMap::bump and Area::blocks are written by the
// owning pool under its lock, and read without it by lock-free lookups (fault reports,
// pmalloc_check_object, core/object_check.h). So every bitmap word access goes through
// LoadWord/StoreWord, relaxed atomics (not read-modify-writes: the writers are serialised
// by the lock), and bump and Area::blocks are release/acquire: a racing reader gets stale
// but whole words, never torn ones, and ThreadSanitizer sees no race. On x86-64 these
// compile to the plain loads and stores they replace.
inline uint64_t LoadWord(const uint64_t* bits, size_t w) {
  return __atomic_load_n(&bits[w], __ATOMIC_RELAXED);
}
inline void StoreWord(uint64_t* bits, size_t w, uint64_t v) {
  __atomic_store_n(&bits[w], v, __ATOMIC_RELAXED);
}

inline bool TestBit(const uint64_t* bits, size_t i) {
  return (LoadWord(bits, i >> 6) >> (i & 63)) & 1;
}
inline void SetBit(uint64_t* bits, size_t i) {
  StoreWord(bits, i >> 6, LoadWord(bits, i >> 6) | uint64_t{1} << (i & 63));
}
inline void ClearBit(uint64_t* bits, size_t i) {
  StoreWord(bits, i >> 6, LoadWord(bits, i >> 6) & ~(uint64_t{1} << (i & 63)));
}

// A value the owning pool writes under its lock and lock-free readers read (see above):
// converts to and assigns from T with acquire loads and release stores, so a reader that
// sees a new value also sees the block map bits set before it (BlockMap::bump: the start
// bit of the block that moved it). Plain loads and stores on x86-64.
template <class T>
class RacyValue {
 public:
  constexpr RacyValue(T v = T{}) : v_(v) {}  // NOLINT: implicit, used as a plain T
  operator T() const { return __atomic_load_n(&v_, __ATOMIC_ACQUIRE); }  // NOLINT
  RacyValue& operator=(T v) {
    __atomic_store_n(&v_, v, __ATOMIC_RELEASE);
    return *this;
  }
  RacyValue& operator+=(T v) { return *this = static_cast<T>(*this) + v; }

 private:
  T v_;
};

// Index of the first set bit in [from, limit), or limit.
inline size_t NextSetBit(const uint64_t* bits, size_t from, size_t limit) {
  size_t i = from;
  while (i < limit) {
    uint64_t word = LoadWord(bits, i >> 6) >> (i & 63);
    if (word != 0) return std::min(limit, i + static_cast<size_t>(__builtin_ctzll(word)));
    i = (i | 63) + 1;
  }
  return limit;
}

// The area's block map once the owning pool has published it (Pool::OpenArea), else
// nullptr. Lock-free: pairs with PublishBlockMap, so the map's bitmaps are seen complete.
inline BlockMap* BlockMapOf(const Area* a) { return __atomic_load_n(&a->blocks, __ATOMIC_ACQUIRE); }
inline void PublishBlockMap(Area* a, BlockMap* m) {
  __atomic_store_n(&a->blocks, m, __ATOMIC_RELEASE);
}

// A start bit and a live bit per unit of the area. Guarded by the owning pool's lock,
// except where a comment says a racy read is fine.
struct BlockMap {
  Area* area = nullptr;        // the window's record of the same area
  RacyValue<size_t> bump = 0;  // bytes from area->base ever handed out
  uint64_t* start_bits = nullptr;
  uint64_t* live_bits = nullptr;
  BlockMap* next = nullptr;  // the owning pool's list
  // Bytes handed out from the area since it was opened or its pages were last discarded
  // (pool lock; Pool::InsertRange).
  size_t handed_out = 0;

  // Size in bytes of the block whose start bit is at unit `i`: up to the next block start
  // or `bump` (passed in so that lock-free callers can use a racy snapshot).
  size_t BlockBytes(size_t i, size_t bump_snapshot) const {
    const size_t end = NextSetBit(start_bits, i + 1, bump_snapshot >> kUnitShift);
    return (end - i) << kUnitShift;
  }
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_BLOCK_MAP_H_
