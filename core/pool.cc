#include "core/pool.h"

#include <errno.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "core/config.h"
#include "core/fatal.h"
#include "core/log.h"
#include "core/platform.h"

namespace pmalloc::internal {

using absl::base_internal::SpinLockHolder;

namespace {

constexpr size_t RoundUp(size_t v, size_t to) { return (v + to - 1) & ~(to - 1); }

bool TestBit(const uint64_t* bits, size_t i) { return (bits[i >> 6] >> (i & 63)) & 1; }
void SetBit(uint64_t* bits, size_t i) { bits[i >> 6] |= uint64_t{1} << (i & 63); }
void ClearBit(uint64_t* bits, size_t i) { bits[i >> 6] &= ~(uint64_t{1} << (i & 63)); }

// Index of the first set bit in [from, limit), or limit.
size_t NextSetBit(const uint64_t* bits, size_t from, size_t limit) {
  size_t i = from;
  while (i < limit) {
    uint64_t word = bits[i >> 6] >> (i & 63);
    if (word != 0) return std::min(limit, i + static_cast<size_t>(__builtin_ctzll(word)));
    i = (i | 63) + 1;
  }
  return limit;
}

// Size in bytes of the block whose start bit is at unit `i`: up to the next block start or
// the area's bump. `bump` is passed in so lock-free callers can use a racy snapshot.
size_t BlockBytes(const Area* a, size_t i, size_t bump) {
  const size_t end = NextSetBit(a->start_bits, i + 1, bump >> kUnitShift);
  return (end - i) << kUnitShift;
}

}  // namespace

Pool* Pool::Create(const char* name, size_t refill, unsigned align_order, unsigned flags) {
  if (name == nullptr || name[0] == '\0' || strlen(name) > PMALLOC_NAME_MAX ||
      align_order > kMaxAlignOrder ||
      (flags & ~(PMALLOC_POOL_GROWABLE | PMALLOC_POOL_MANUAL)) != 0 || refill > kMaxAllocation) {
    errno = EINVAL;
    return nullptr;
  }
  void* mem = MetaAlloc(sizeof(Pool), /*zero=*/true);
  if (mem == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  Pool* pool = new (mem) Pool();
  pool->flags_ = flags;
  pool->align_ = align_order == 0 ? 16 : std::max(kUnit, size_t{1} << align_order);
  pool->refill_ = RoundUp(refill == 0 ? kDefaultRefill : refill, platform::PageSize());
  memcpy(pool->name_, name, strlen(name) + 1);
  memcpy(pool->map_name_, "pmalloc:", 8);
  memcpy(pool->map_name_ + 8, name, strlen(name) + 1);
  return pool;
}

void Pool::Delete(Pool* pool) {
  pool->magic_ = 0;
  pool->~Pool();
  MetaFree(pool);
}

void* Pool::Allocate(size_t size, size_t align, bool zero) {
  if (size > kMaxAllocation) {
    errno = ENOMEM;
    return nullptr;
  }
  if (align == 0 || align < align_) align = align_;
  if ((align & (align - 1)) != 0 || align > (size_t{1} << kMaxAlignOrder)) {
    errno = EINVAL;
    return nullptr;
  }
  const size_t rsize = RoundUp(size == 0 ? 1 : size, align_);
  uintptr_t p = 0;
  bool fresh = false;
  {
    SpinLockHolder h(&lock_);
    if (align == align_) p = TakeFree(rsize);
    if (p == 0) {
      p = Bump(rsize, align);
      if (p == 0) return nullptr;  // errno set by Bump
      fresh = true;
    }
    live_bytes_ += rsize;
    ++live_allocs_;
  }
  // Bump memory has never been handed out, and fresh areas are zero-filled mappings.
  if (zero && !fresh) memset(reinterpret_cast<void*>(p), 0, size);
  return reinterpret_cast<void*>(p);
}

uintptr_t Pool::TakeFree(size_t rsize) {
  const size_t units = rsize >> kUnitShift;
  uintptr_t p = 0;
  if (units <= kSmallUnits) {
    AddrVector& list = small_free_[units];
    if (list.empty()) return 0;
    p = list.back();
    list.pop_back();
  } else {
    // Newest first (LIFO: likely still in cache), and removal by swapping in the last
    // element, so taking a recently freed block costs O(1) instead of a vector shift.
    auto it = std::find_if(large_free_.rbegin(), large_free_.rend(),
                           [rsize](const FreeRange& r) { return r.len >= rsize; });
    if (it == large_free_.rend()) return 0;
    const FreeRange r = *it;
    *it = large_free_.back();
    large_free_.pop_back();
    p = r.start;
    if (r.len > rsize) {
      Area* a = Window::AreaOf(reinterpret_cast<void*>(p));
      SetBit(a->start_bits, (p + rsize - a->base) >> kUnitShift);
      PushFree(a, p + rsize, r.len - rsize);
    }
  }
  Area* a = Window::AreaOf(reinterpret_cast<void*>(p));
  SetBit(a->live_bits, (p - a->base) >> kUnitShift);
  return p;
}

void Pool::PushFree(Area* a, uintptr_t start, size_t len) {
  // Free blocks keep their start bit; only blocks of a whole number of pool alignment
  // units are worth keeping, the rest stays as dead padding of the area.
  len &= ~(align_ - 1);
  if (len == 0 || !a->writable.load(std::memory_order_relaxed)) return;
  const size_t units = len >> kUnitShift;
  try {
    if (units <= kSmallUnits) {
      small_free_[units].push_back(start);
    } else {
      large_free_.push_back({start, len});
    }
  } catch (const std::bad_alloc&) {
    // Out of metadata memory: the block is simply not reused.
  }
}

void Pool::ClearFreeLists() {
  for (AddrVector& list : small_free_) AddrVector().swap(list);
  RangeVector().swap(large_free_);
}

uintptr_t Pool::Bump(size_t rsize, size_t align) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    Area* a = current_;
    if (a != nullptr) {
      const uintptr_t top = a->base + a->bump;
      const uintptr_t p = RoundUp(top, align);
      if (p >= top && p - a->base <= a->size && a->size - (p - a->base) >= rsize) {
        if (p > top) {  // alignment gap becomes a free block
          SetBit(a->start_bits, (top - a->base) >> kUnitShift);
          PushFree(a, top, p - top);
        }
        const size_t i = (p - a->base) >> kUnitShift;
        SetBit(a->start_bits, i);
        SetBit(a->live_bits, i);
        a->bump = p + rsize - a->base;
        return p;
      }
    }
    if (attempt == 1) break;
    // Alignment beyond the granule needs slack in the new area.
    const size_t slack = align > kGranule ? align - kGranule : 0;
    if (!OpenArea(rsize + slack)) return 0;
  }
  errno = ENOMEM;
  return 0;
}

void Pool::RetireCurrent() {
  Area* a = current_;
  if (a == nullptr) return;
  current_ = nullptr;
  if (a->bump < a->size && a->writable.load(std::memory_order_relaxed)) {
    const uintptr_t tail = a->base + a->bump;
    SetBit(a->start_bits, a->bump >> kUnitShift);
    a->bump = a->size;
    PushFree(a, tail, a->size - (tail - a->base));
  }
}

bool Pool::OpenArea(size_t min_bytes) {
  if (protected_ && (flags_ & PMALLOC_POOL_GROWABLE) == 0) {
    errno = EPERM;
    return false;
  }
  // A new area is at least half the pool's live bytes (up to kMaxAreaGrowth), so a pool
  // of N bytes in small allocations has O(log N + N / 1 MiB) areas, and VMAs, rather than
  // N / refill: 16384 for 1 GiB at the default 64 KiB refill (vm.max_map_count is 65530).
  // Live bytes, not mapped: a GROWABLE pool that allocates a little after each protect
  // keeps opening refill-sized areas instead of ever larger ones.
  const size_t grown = std::min(kMaxAreaGrowth, RoundUp(live_bytes_ / 2, kGranule));
  Area* a = Window::NewArea(this, std::max({refill_, min_bytes, grown}), map_name_);
  if (a == nullptr) return false;
  RetireCurrent();
  a->next = areas_;
  areas_ = a;
  current_ = a;
  protected_ = false;
  mapped_bytes_ += a->size;
  ++area_count_;
  return true;
}

void Pool::Free(const void* ptr) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  Area* a = Window::AreaOf(ptr);
  if (a == nullptr || a->pool != this) FatalInvalidPfree(ptr, name_);
  SpinLockHolder h(&lock_);
  const size_t off = p - a->base;
  if ((off & (kUnit - 1)) != 0 || off >= a->bump) FatalInvalidPfree(ptr, name_);
  const size_t i = off >> kUnitShift;
  if (!TestBit(a->start_bits, i)) FatalInvalidPfree(ptr, name_);
  if (!TestBit(a->live_bits, i)) FatalDoublePfree(ptr, name_);
  const size_t bytes = BlockBytes(a, i, a->bump);
  ClearBit(a->live_bits, i);
  live_bytes_ -= bytes;
  --live_allocs_;
  if (a->writable.load(std::memory_order_relaxed)) {
    PushFree(a, p, bytes);
  } else {
    freed_after_protect_ += bytes;
  }
}

size_t Pool::UsableSize(const void* ptr) {
  Area* a = Window::AreaOf(ptr);
  if (a == nullptr) return 0;
  Pool* pool = a->pool;
  SpinLockHolder h(&pool->lock_);
  const size_t off = reinterpret_cast<uintptr_t>(ptr) - a->base;
  if ((off & (kUnit - 1)) != 0 || off >= a->bump) return 0;
  const size_t i = off >> kUnitShift;
  if (!TestBit(a->start_bits, i) || !TestBit(a->live_bits, i)) return 0;
  return BlockBytes(a, i, a->bump);
}

bool Pool::FindBlock(const void* ptr, uintptr_t* start, size_t* size, bool* live) {
  Area* a = Window::AreaOf(ptr);
  if (a == nullptr) return false;
  const size_t bump = a->bump;  // racy snapshot is fine for a report
  const size_t off = reinterpret_cast<uintptr_t>(ptr) - a->base;
  if (off >= bump) return false;
  size_t i = off >> kUnitShift;
  while (!TestBit(a->start_bits, i)) {
    if (i == 0) return false;
    --i;
  }
  *start = a->base + (i << kUnitShift);
  *size = BlockBytes(a, i, bump);
  *live = TestBit(a->live_bits, i);
  return true;
}

int Pool::Prealloc(size_t size) {
  if (size > kMaxAllocation) {
    errno = ENOMEM;
    return -1;
  }
  SpinLockHolder h(&lock_);
  const Area* a = current_;
  const size_t room = a == nullptr ? 0 : a->size - a->bump;
  if (a != nullptr && room >= size) return 0;
  if (protected_ && (flags_ & PMALLOC_POOL_GROWABLE) == 0) {
    errno = EPERM;
    return -1;
  }
  return OpenArea(RoundUp(size == 0 ? 1 : size, align_)) ? 0 : -1;
}

int Pool::ProtectLocked() {
  // protect:shared (default) moves each area onto a read-only shared memfd mapping, so
  // writes through /proc/PID/mem fail too (docs/design.md §2); the pool lock keeps pmalloc's
  // own writers out during the copy. Bytes past the bump were never handed out and are
  // not copied. If the move fails (no memory, no descriptor left) the area still gets
  // mprotect, and one line says the protection is weaker.
  const bool shared = GetConfig().protect_shared;
  int err = 0;
  int shared_err = 0;
  for (Area* a = areas_; a != nullptr; a = a->next) {
    if (!a->writable.load(std::memory_order_relaxed)) continue;
    void* base = reinterpret_cast<void*>(a->base);
    bool ok = false;
    if (shared) {
      ok = platform::RemapSharedReadOnly(base, a->size, RoundUp(a->bump, platform::PageSize()),
                                         map_name_);
      if (!ok && shared_err == 0) shared_err = errno;
    }
    if (!ok) ok = platform::ProtectReadOnly(base, a->size);
    if (ok) {
      a->writable.store(false, std::memory_order_release);
    } else if (err == 0) {
      err = errno;
    }
  }
  if (shared_err != 0) {
    LogLine line;
    line.Str("pmalloc: pool '")
        .Str(name_)
        .Str("': cannot move to a shared mapping (errno ")
        .Dec(static_cast<uint64_t>(shared_err))
        .Str("): protected with mprotect only, /proc/PID/mem can still write it");
    line.Emit();
  }
  current_ = nullptr;  // the rest of the current area is relinquished
  ClearFreeLists();    // protected memory is never handed out again
  if (err != 0) {
    errno = err;
    return -1;
  }
  protected_ = true;
  return 0;
}

int Pool::Protect() {
  SpinLockHolder h(&lock_);
  return ProtectLocked();
}

int Pool::Seal() {
  SpinLockHolder h(&lock_);
  if (ProtectLocked() != 0) return -1;
  int err = 0;
  for (Area* a = areas_; a != nullptr; a = a->next) {
    if (a->sealed.load(std::memory_order_relaxed)) continue;
    if (platform::Seal(reinterpret_cast<void*>(a->base), a->size)) {
      a->sealed.store(true, std::memory_order_release);
    } else if (err == 0) {
      err = errno;
    }
  }
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}

void Pool::Stats(pmalloc_stats* out) {
  SpinLockHolder h(&lock_);
  *out = {};
  out->live_bytes = live_bytes_;
  out->live_allocs = live_allocs_;
  out->mapped_bytes = mapped_bytes_;
  out->freed_after_protect_bytes = freed_after_protect_;
  out->areas = area_count_;
  bool all_ro = true;
  bool all_sealed = areas_ != nullptr;
  for (const Area* a = areas_; a != nullptr; a = a->next) {
    all_ro = all_ro && !a->writable.load(std::memory_order_relaxed);
    all_sealed = all_sealed && a->sealed.load(std::memory_order_relaxed);
  }
  out->is_protected = (protected_ && all_ro) ? 1 : 0;
  out->is_sealed = all_sealed ? 1 : 0;
}

int Pool::UnmapAreas() {
  SpinLockHolder h(&lock_);
  for (const Area* a = areas_; a != nullptr; a = a->next) {
    if (a->sealed.load(std::memory_order_relaxed)) {
      errno = EPERM;
      return -1;
    }
  }
  if (live_allocs_ != 0) {
    errno = EBUSY;
    return -1;
  }
  ClearFreeLists();
  current_ = nullptr;
  while (areas_ != nullptr) {
    Area* a = areas_;
    Area* next = a->next;
    mapped_bytes_ -= a->size;
    if (!Window::DeleteArea(a)) return -1;  // errno from munmap; remaining areas kept
    areas_ = next;
    --area_count_;
  }
  return 0;
}

}  // namespace pmalloc::internal
