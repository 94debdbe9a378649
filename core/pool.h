// The in-pool allocator. A pool owns a list of areas (see window.h). Allocation is
// bump-pointer inside the current area, with exact-size free lists for reuse before
// protection. Everything the allocator knows about a block — where it starts, whether it is
// live, its size — lives in the area's bitmaps and the pool object, never on pool pages:
// pool pages hold only user data, so protecting them hides nothing the allocator writes.
//
// Thread safety: one spin lock per pool guards its areas, bitmaps and free lists. Lookups
// by pointer (Window::AreaOf) are lock-free.
#ifndef PMALLOC_CORE_POOL_H_
#define PMALLOC_CORE_POOL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/internal/spinlock.h"
#include "absl/base/thread_annotations.h"
#include "core/meta_allocator.h"
#include "core/window.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc::internal {

// Largest single allocation a pool serves (larger requests fail with ENOMEM).
inline constexpr size_t kMaxAllocation = size_t{1} << 40;
inline constexpr size_t kDefaultRefill = size_t{64} << 10;
// Areas grow with the pool (Pool::OpenArea) up to this size: below the 2 MiB at which an
// area asks for transparent huge pages, so growth never changes how pages are backed.
inline constexpr size_t kMaxAreaGrowth = size_t{1} << 20;
inline constexpr unsigned kMaxAlignOrder = 30;

class Pool {
 public:
  // Validates arguments and builds an empty pool (no area yet). nullptr with errno set.
  static Pool* Create(const char* name, size_t refill, unsigned align_order, unsigned flags);
  // Frees the object. REQUIRES: no areas left (see UnmapAreas()).
  static void Delete(Pool* pool);

  // True for a handle that points at a live pool (best effort: checks a magic word).
  bool Valid() const { return magic_ == kMagic; }

  // `align` 0 means the pool's alignment. nullptr with errno (ENOMEM, EPERM, EINVAL).
  void* Allocate(size_t size, size_t align, bool zero);
  // Aborts with a fixed message on an invalid pointer or double free. REQUIRES: p != null.
  void Free(const void* p);
  int Prealloc(size_t size);
  int Protect();
  int Seal();
  void Stats(pmalloc_stats* out);

  // Unmaps every area (the address ranges go back to the window as reserved PROT_NONE
  // memory) if the pool may be destroyed: -1 with EBUSY (live allocations) or
  // EPERM (sealed). REQUIRES: the pool is unreachable for new users (registry holds it).
  int UnmapAreas();

  // Usable size of the live block starting at p, or 0. Takes the owning pool's lock.
  static size_t UsableSize(const void* p);

  // Finds the block (live or not) containing p. No lock: for fault reports only.
  static bool FindBlock(const void* p, uintptr_t* start, size_t* size, bool* live);

  const char* name() const { return name_; }
  unsigned flags() const { return flags_; }
  size_t alignment() const { return align_; }

  void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { lock_.Lock(); }
  void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { lock_.Unlock(); }

  // Registry links (guarded by the registry lock).
  Pool* next = nullptr;
  Pool* prev = nullptr;

 private:
  static constexpr uint32_t kMagic = 0x706d6c70;  // "pmlp"
  static constexpr size_t kSmallUnits = 128;      // exact-size free lists up to 1 KiB

  struct FreeRange {
    uintptr_t start;
    size_t len;
  };
  using AddrVector = std::vector<uintptr_t, MetaAllocator<uintptr_t>>;
  using RangeVector = std::vector<FreeRange, MetaAllocator<FreeRange>>;

  Pool() = default;

  uintptr_t TakeFree(size_t rsize) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  uintptr_t Bump(size_t rsize, size_t align) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  bool OpenArea(size_t min_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void RetireCurrent() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void PushFree(Area* a, uintptr_t start, size_t len) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void ClearFreeLists() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  int ProtectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);

  uint32_t magic_ = kMagic;
  unsigned flags_ = 0;
  size_t align_ = 16;
  size_t refill_ = kDefaultRefill;
  char name_[PMALLOC_NAME_MAX + 1] = {};
  char map_name_[PMALLOC_NAME_MAX + 16] = {};  // "pmalloc:<name>"

  absl::base_internal::SpinLock lock_{absl::kConstInit, absl::base_internal::SCHEDULE_KERNEL_ONLY};
  Area* areas_ ABSL_GUARDED_BY(lock_) = nullptr;
  Area* current_ ABSL_GUARDED_BY(lock_) = nullptr;  // writable area bump-allocated from
  bool protected_ ABSL_GUARDED_BY(lock_) = false;   // no writable area since last protect
  AddrVector small_free_[kSmallUnits + 1] ABSL_GUARDED_BY(lock_);
  RangeVector large_free_ ABSL_GUARDED_BY(lock_);

  size_t live_bytes_ ABSL_GUARDED_BY(lock_) = 0;
  size_t live_allocs_ ABSL_GUARDED_BY(lock_) = 0;
  size_t mapped_bytes_ ABSL_GUARDED_BY(lock_) = 0;
  size_t freed_after_protect_ ABSL_GUARDED_BY(lock_) = 0;
  size_t area_count_ ABSL_GUARDED_BY(lock_) = 0;
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_POOL_H_
