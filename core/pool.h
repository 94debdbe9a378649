// The in-pool allocator. A pool owns a list of areas (see window.h), each with its
// BlockMap (block_map.h). Allocation is bump-pointer inside the current area, with reuse of
// freed blocks before protection: exact-size free lists up to 1 KiB, and above that
// coalesced free ranges taken best-fit (merged with their free neighbours when freed; the
// small lists are merged into them too before the pool opens a new area while they hold an
// eighth of its memory). An area that becomes wholly free gives its pages back to the system
// and stays mapped for reuse. Everything the allocator knows about a block — where it starts,
// whether it is live, its size — lives in the areas' block maps and the pool object, never on pool
// pages: pool pages hold only user data, so protecting them hides nothing the allocator writes.
//
// Thread safety: one spin lock per pool (core/pool_lock.h) guards its areas, bitmaps and free
// lists. Lookups by pointer (Window::AreaOf) are lock-free.
#ifndef PMALLOC_CORE_POOL_H_
#define PMALLOC_CORE_POOL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/block_map.h"
#include "core/free_ranges.h"
#include "core/meta_allocator.h"
#include "core/platform.h"
#include "core/pool_lock.h"
#include "core/window.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc::internal {

// Largest single allocation a pool serves (larger requests fail with ENOMEM).
inline constexpr size_t kMaxAllocation = size_t{1} << 40;
inline constexpr size_t kDefaultRefill = size_t{64} << 10;
// Areas grow with the pool (Pool::OpenArea: each new area as large as the pool's live bytes,
// so sizes double) up to this size. Areas of 2 MiB or more are whole huge pages, start on a
// huge-page boundary and, when anonymous (protect:mprotect), ask for transparent huge pages.
inline constexpr size_t kMaxAreaGrowth = size_t{32} << 20;
// Largest per-call alignment (pmalloc_aligned, memalign in a scope): 1 GiB; above it a
// power-of-two alignment fails with ENOMEM (glibc's rule: it cannot be satisfied).
inline constexpr unsigned kMaxAlignOrder = 30;
// Largest pool alignment (align_order at creation): 2 MiB. Every allocation of such a pool
// takes at least 1 << align_order bytes of the shared window (and an area of twice that
// when it opens one): at 30, 31 one-byte allocations took the whole 64 GiB window.
inline constexpr unsigned kMaxPoolAlignOrder = 21;

class Pool {
 public:
  // Validates arguments and builds an empty pool (no area yet). nullptr with errno set.
  static Pool* Create(const char* name, size_t refill, unsigned align_order, unsigned flags);
  // Frees the object. REQUIRES: no areas left (see UnmapAreas()).
  static void Delete(Pool* pool);

  // True for a handle that points at a live pool (best effort: checks a magic word).
  bool Valid() const { return magic_ == kMagic; }

  // `align` 0 means the pool's alignment. nullptr with errno (ENOMEM, EPERM, EINVAL).
  // `zero` zeroes the block; `copy_len` bytes from `copy_from` are copied into its start.
  // Both happen under the pool lock, so a concurrent Protect() never sees (and never makes
  // read-only) a block pmalloc has not finished writing. REQUIRES: copy_len <= size.
  // `source`: the area `copy_from` lies in when it is a block of this pool (realloc): if a
  // protect made it read-only meanwhile, nullptr with EPERM (a protected block never moves).
  void* Allocate(size_t size, size_t align, bool zero, const void* copy_from = nullptr,
                 size_t copy_len = 0, const Area* source = nullptr);
  // Aborts with a fixed message on an invalid pointer or double free. REQUIRES: p != null.
  // `wipe` zeroes the block first if its area is writable (kfree_sensitive), under the
  // pool lock, so a concurrent Protect() never turns the zeroing into a fault; a protected
  // block keeps its bytes.
  void Free(const void* p, bool wipe = false);
  // Free() of a pointer already looked up: `a` is Window::AreaOf(p) and belongs to this pool.
  void FreeInArea(Area* a, const void* p, bool wipe = false);
  int Prealloc(size_t size);
  // `batch`: the memfd's descriptor is closed through it (lockdown closes all pools' at once).
  int Protect(platform::FdBatch* batch = nullptr);
  int Seal(platform::FdBatch* batch = nullptr);
  void Stats(pmalloc_stats* out);

  // Unmaps every area (the address ranges go back to the window as reserved PROT_NONE
  // memory) if the pool may be destroyed: -1 with EBUSY (live allocations) or
  // EPERM (sealed). REQUIRES: the pool is unreachable for new users (registry holds it).
  int UnmapAreas();

  // Usable size of the live block starting at p, or 0. Takes the owning pool's lock.
  static size_t UsableSize(const void* p);
  // Grows the live block at `p` (of this pool, writable) in place to at least `size` bytes,
  // into the free range that follows it or the current area's unused tail: true when the
  // block now holds `size` bytes, false when it was left as it was. `*old_bytes` gets the
  // block's usable size before the call, 0 when `p` is not a live block of a writable area
  // of this pool. For realloc: one lock and one size lookup.
  bool ResizeInPlace(const void* p, size_t size, size_t* old_bytes);

  // Finds the block (live or not) containing p. No lock: for fault reports only.
  static bool FindBlock(const void* p, uintptr_t* start, size_t* size, bool* live);

  const char* name() const { return name_; }
  unsigned flags() const { return flags_; }
  size_t alignment() const { return align_; }

  // Takes the pool lock for fork and re-maps every writable shared area MAP_PRIVATE over
  // the pool's memfd (platform::PrivatizeArea), so that parent and child copy on write
  // instead of sharing writable pages; then closes the memfd: the next area, in either
  // process, goes to a fresh one. One mmap per writable area, no copy.
  void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS;
  void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // Write-rare pools: core/write_rare.h does the writes, fork and make-read-only, on this
  // pool's lock, areas and memfd.
  friend class WriteRare;

  // Registry links (guarded by the registry lock).
  Pool* next = nullptr;
  Pool* prev = nullptr;

 private:
  static constexpr uint32_t kMagic = 0x706d6c70;  // "pmlp"
  static constexpr size_t kSmallUnits = 128;      // exact-size free lists up to 1 KiB

  using AddrVector = std::vector<uintptr_t, MetaAllocator<uintptr_t>>;

  Pool() = default;

  // A free block of exactly `rsize` bytes from the small lists or (above 1 KiB) the best
  // fitting free range, marked live; 0 when there is none.
  uintptr_t TakeFree(size_t rsize) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // The best fitting free range, split to `rsize` and marked live, or 0.
  uintptr_t TakeRange(size_t rsize) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // Before a new area: free ranges, then (when the small lists hold enough) the small lists
  // merged into ranges. 0 when nothing fits.
  uintptr_t Reclaim(size_t rsize) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // Bump allocation from the current area, 0 when it has no room.
  uintptr_t Bump(size_t rsize, size_t align) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // Adds the free block [start, start+len) of area `m` to the ranges, merged with the free
  // ranges on either side (their start bits cleared: one block). A range that covers its
  // whole area discards the area's pages.
  void InsertRange(BlockMap* m, uintptr_t start, size_t len) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // [start, start+len) of area `m` becomes a free block of its own (start bit set) and goes
  // to the free lists: the rest of a split block, a retired tail, an alignment gap.
  void PushNewFree(BlockMap* m, uintptr_t start, size_t len) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // Usable size of the live block starting at offset `off` of `m`'s area, or 0 when no live
  // block starts there.
  static size_t LiveBlockBytes(const BlockMap* m, size_t off);
  // The block map of this pool's area holding `p`: the current area's without a window
  // lookup (most reuse is there), else through Window::AreaOf.
  BlockMap* OwnMapOf(uintptr_t p) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_) {
    const BlockMap* c = current_;
    if (c != nullptr && c->area->Contains(p)) return current_;
    return Window::AreaOf(reinterpret_cast<const void*>(p))->blocks;
  }
  void FlushSmallLists() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  bool OpenArea(size_t min_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void RetireCurrent() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void PushFree(BlockMap* m, uintptr_t start, size_t len) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void ClearFreeLists() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  int ProtectLocked(platform::FdBatch* batch = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  bool ProtectArea(BlockMap* m, int* shared_err) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void NoFile(int err) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void CloseFile(platform::FdBatch* batch = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // True when [p, p+n) lies inside one live block of area `a` (an area of this pool).
  bool LiveBlockContaining(const Area* a, uintptr_t p, size_t n) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  // A write-rare pool that pmalloc_make_pool_ro has not closed: its memfd stays open after
  // protect, and every protected area lives on it.
  bool KeepsFile() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_) {
    return (flags_ & PMALLOC_POOL_WRITE_RARE) != 0 && !wr_closed_;
  }

  uint32_t magic_ = kMagic;
  unsigned flags_ = 0;
  size_t align_ = 16;
  size_t refill_ = kDefaultRefill;
  char name_[PMALLOC_NAME_MAX + 1] = {};
  char map_name_[PMALLOC_NAME_MAX + 16] = {};  // "pmalloc:<name>"

  PoolLock lock_;
  BlockMap* areas_ ABSL_GUARDED_BY(lock_) = nullptr;
  // The memfd that writable shared areas live on (protect:shared). Open only while the pool
  // has writable areas on it: protect, fork and destroy close it, so no descriptor that
  // could pwrite protected pages outlives their protection.
  platform::PoolFile file_ ABSL_GUARDED_BY(lock_);
  bool file_failed_ ABSL_GUARDED_BY(lock_) = false;     // said once: areas fell back to anonymous
  BlockMap* current_ ABSL_GUARDED_BY(lock_) = nullptr;  // writable area bump-allocated from
  bool protected_ ABSL_GUARDED_BY(lock_) = false;       // no writable area since last protect
  bool sealed_ ABSL_GUARDED_BY(lock_) = false;          // Seal() succeeded: never destroyed
  bool wr_closed_ ABSL_GUARDED_BY(lock_) = false;       // pmalloc_make_pool_ro ran
  // A fork could not privatise a shared area: the child shares its pages (and its memfd),
  // so freeing them (MADV_REMOVE) would wipe the child's blocks. Shared areas keep them.
  bool shared_with_child_ ABSL_GUARDED_BY(lock_) = false;
  platform::PoolFile wr_fork_file_ ABSL_GUARDED_BY(lock_);  // the child's copy, across fork
  int wr_fork_pid_ ABSL_GUARDED_BY(lock_) = 0;              // the parent's pid, across fork
  AddrVector small_free_[kSmallUnits + 1] ABSL_GUARDED_BY(lock_);
  size_t small_free_bytes_ ABSL_GUARDED_BY(lock_) = 0;  // in small_free_
  // Free blocks above 1 KiB (and the small lists, once merged), in this pool's writable areas.
  FreeRanges ranges_ ABSL_GUARDED_BY(lock_);

  size_t live_bytes_ ABSL_GUARDED_BY(lock_) = 0;
  size_t live_allocs_ ABSL_GUARDED_BY(lock_) = 0;
  size_t mapped_bytes_ ABSL_GUARDED_BY(lock_) = 0;
  size_t freed_after_protect_ ABSL_GUARDED_BY(lock_) = 0;
  size_t area_count_ ABSL_GUARDED_BY(lock_) = 0;
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_POOL_H_
