#include "core/window.h"

#include <errno.h>

#include <new>

#include "absl/base/attributes.h"
#include "absl/base/const_init.h"
#include "absl/base/internal/spinlock.h"
#include "core/free_ranges.h"
#include "core/meta_allocator.h"
#include "core/platform.h"

namespace pmalloc::internal {

using absl::base_internal::SpinLock;
using absl::base_internal::SpinLockHolder;

ABSL_CONST_INIT PMALLOC_RO_STATE RoSlot<Window::State> Window::state_;

namespace {

ABSL_CONST_INIT SpinLock window_lock(absl::kConstInit, absl::base_internal::SCHEDULE_KERNEL_ONLY);
ABSL_CONST_INIT size_t requested_size = kDefaultWindowSize;
ABSL_CONST_INIT uintptr_t carve_next = 0;  // first never-used address

// Address ranges of destroyed areas, merged with their free neighbours (core/free_ranges.h).
// They are reused only when the never-used tail of the window is too short, so a stale
// pointer into a destroyed pool keeps faulting for as long as possible. Guarded by
// window_lock; made on first use (no static constructor).
ABSL_CONST_INIT FreeRanges* free_ranges = nullptr;

size_t RoundUp(size_t v, size_t to) { return (v + to - 1) & ~(to - 1); }

// Returns [start, start + len) to the free ranges, merged with free neighbours. Losing a
// range to a metadata allocation failure only wastes address space. REQUIRES: window_lock.
void FreeRange(uintptr_t start, size_t len) {
  if (free_ranges == nullptr) free_ranges = MetaNew<FreeRanges>();
  if (free_ranges != nullptr) free_ranges->Insert(start, len);
}

// The first granule of the window holds no area: its first page is a landmark, a PROT_NONE
// memfd mapping named "pmalloc-window:0x<window size in hex>", which tells pmalloc-inspect
// where the window is, so that it can see writable areas that the kernel shows unnamed
// (without CONFIG_ANON_VMA_NAME). Best effort: without it (memfd_create failing) everything
// works, and pmalloc-inspect says it cannot see writable areas. No stdio: this may run on
// the malloc path.
void MapWindowLandmark(uintptr_t base, size_t size) {
  char name[40] = "pmalloc-window:0x";
  size_t len = sizeof("pmalloc-window:0x") - 1;
  int shift = 60;
  while (shift > 0 && ((size >> shift) & 0xf) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) name[len++] = "0123456789abcdef"[(size >> shift) & 0xf];
  name[len] = '\0';
  const int saved = errno;
  (void)platform::MapLandmark(reinterpret_cast<void*>(base), name);
  errno = saved;
}

// REQUIRES: window_lock held.
uintptr_t Carve(size_t span) {
  const uintptr_t end = Window::base() + Window::size();
  if (end - carve_next < span && free_ranges != nullptr) {
    // The window's never-used tail is too short: a free range that ends where it starts
    // becomes part of it.
    const FreeRanges::Range last = free_ranges->Last();
    if (last.len != 0 && last.start + last.len == carve_next) {
      carve_next = last.start;
      (void)free_ranges->TakeAt(last.start);
    }
  }
  if (end - carve_next >= span) {
    const uintptr_t p = carve_next;
    carve_next += span;
    return p;
  }
  if (free_ranges == nullptr) return 0;
  const FreeRanges::Range fit = free_ranges->TakeBestFit(span);  // lowest address among equals
  if (fit.len == 0) return 0;
  const uintptr_t p = fit.start;
  if (fit.len > span) FreeRange(p + span, fit.len - span);
  return p;
}

}  // namespace

bool Window::SetSize(size_t bytes) {
  SpinLockHolder h(&window_lock);
  if (size() != 0 || bytes < kMinWindowSize) return false;
  requested_size = RoundUp(bytes, kGranule);
  return true;
}

bool Window::EnsureInit() {
  if (size() != 0) return true;
  SpinLockHolder h(&window_lock);
  if (size() != 0) return true;
  for (size_t want = requested_size;; want = RoundUp(want / 2, kGranule)) {
    void* base = platform::Reserve(want, kGranule);
    if (base == nullptr) {
      if (want <= kMinWindowSize) break;
      continue;
    }
    const size_t table_bytes =
        RoundUp((want >> kGranuleShift) * sizeof(std::atomic<Area*>), platform::PageSize());
    void* table = platform::AllocatePages(table_bytes);
    if (table == nullptr) {
      (void)platform::FreePages(base, want);
      break;
    }
    RoWrite w;  // after lockdown a copy of the section, moved over it read-only
    if (!w.ok()) {
      const int err = errno;
      (void)platform::FreePages(table, table_bytes);
      (void)platform::FreePages(base, want);
      errno = err;
      return false;
    }
    MapWindowLandmark(reinterpret_cast<uintptr_t>(base), want);
    carve_next = reinterpret_cast<uintptr_t>(base) + kGranule;
    State* s = w(&state_);
    s->table = static_cast<std::atomic<Area*>*>(table);
    s->base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_relaxed);
    s->size.store(want, std::memory_order_release);
    if (!w.Commit()) {
      const int err = errno;
      (void)platform::FreePages(table, table_bytes);
      (void)platform::FreePages(base, want);
      errno = err;
      return false;
    }
    return true;
  }
  errno = ENOMEM;
  return false;
}

Area* Window::NewArea(Pool* pool, size_t size, const char* name, platform::PoolFile* file) {
  if (!EnsureInit()) return nullptr;
  const size_t page = platform::PageSize();
  if (size == 0 || size > Window::size() / 2) {
    errno = ENOMEM;
    return nullptr;
  }
  size = RoundUp(size, page);
  // Large areas are carved with room to start on a huge-page boundary; the lead before it
  // goes back to the free ranges.
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t lead_room = size >= kHuge ? kHuge - kGranule : 0;
  size_t span = RoundUp(size, kGranule) + kGranule;  // trailing guard granule

  Area* area = MetaNew<Area>();
  if (area == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  uintptr_t base = 0;
  {
    SpinLockHolder h(&window_lock);
    base = Carve(span + lead_room);
    if (base != 0 && lead_room != 0) {
      const uintptr_t aligned = RoundUp(base, kHuge);
      if (aligned > base) FreeRange(base, aligned - base);
      span += lead_room - (aligned - base);
      base = aligned;
    }
  }
  size_t offset = 0;
  const bool mapped =
      base != 0 &&
      (file != nullptr ? platform::MapSharedArea(reinterpret_cast<void*>(base), size, file, &offset)
                       : platform::MapArea(reinterpret_cast<void*>(base), size, name));
  if (!mapped) {
    const int saved = base == 0 ? ENOMEM : errno;
    if (base != 0) {
      SpinLockHolder h(&window_lock);
      FreeRange(base, span);
    }
    MetaDelete(area);
    errno = saved;
    return nullptr;
  }
  area->base = base;
  area->size = size;
  area->span = span;
  area->backing = file != nullptr ? Area::Backing::kShared : Area::Backing::kAnonymous;
  area->file_offset = offset;
  area->pool = pool;
  const uintptr_t first = (base - Window::base()) >> kGranuleShift;
  for (size_t g = 0; g < span >> kGranuleShift; ++g) {
    state_.v.table[first + g].store(area, std::memory_order_release);
  }
  return area;
}

bool Window::DeleteArea(Area* area) {
  if (!platform::Unmap(reinterpret_cast<void*>(area->base), area->size)) return false;
  const uintptr_t first = (area->base - Window::base()) >> kGranuleShift;
  for (size_t g = 0; g < area->span >> kGranuleShift; ++g) {
    state_.v.table[first + g].store(nullptr, std::memory_order_release);
  }
  {
    SpinLockHolder h(&window_lock);
    FreeRange(area->base, area->span);
  }
  MetaDelete(area);
  return true;
}

void Window::LockForFork() { window_lock.Lock(); }
void Window::UnlockAfterFork() { window_lock.Unlock(); }

}  // namespace pmalloc::internal
