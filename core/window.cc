#include "core/window.h"

#include <errno.h>

#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/const_init.h"
#include "absl/base/internal/spinlock.h"
#include "core/meta_allocator.h"
#include "core/platform.h"

namespace pmalloc::internal {

using absl::base_internal::SpinLock;
using absl::base_internal::SpinLockHolder;

std::atomic<uintptr_t> Window::base_{0};
std::atomic<size_t> Window::size_{0};
std::atomic<Area*>* Window::table_ = nullptr;

namespace {

struct Range {
  uintptr_t start;
  size_t len;
};

ABSL_CONST_INIT SpinLock window_lock(absl::kConstInit, absl::base_internal::SCHEDULE_KERNEL_ONLY);
ABSL_CONST_INIT size_t requested_size = kDefaultWindowSize;
ABSL_CONST_INIT uintptr_t carve_next = 0;  // first never-used address
// Address ranges of destroyed areas; reused only when the window is otherwise full, so a
// stale pointer into a destroyed pool keeps faulting for as long as possible.
ABSL_CONST_INIT std::vector<Range, MetaAllocator<Range>>* free_ranges = nullptr;

size_t RoundUp(size_t v, size_t to) { return (v + to - 1) & ~(to - 1); }

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
  if (end - carve_next >= span) {
    const uintptr_t p = carve_next;
    carve_next += span;
    return p;
  }
  if (free_ranges == nullptr) return 0;
  for (size_t i = 0; i < free_ranges->size(); ++i) {
    Range& r = (*free_ranges)[i];
    if (r.len < span) continue;
    const uintptr_t p = r.start;
    r.start += span;
    r.len -= span;
    if (r.len == 0) free_ranges->erase(free_ranges->begin() + static_cast<long>(i));
    return p;
  }
  return 0;
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
    table_ = static_cast<std::atomic<Area*>*>(table);
    MapWindowLandmark(reinterpret_cast<uintptr_t>(base), want);
    carve_next = reinterpret_cast<uintptr_t>(base) + kGranule;
    base_.store(reinterpret_cast<uintptr_t>(base), std::memory_order_relaxed);
    size_.store(want, std::memory_order_release);
    return true;
  }
  errno = ENOMEM;
  return false;
}

Area* Window::NewArea(Pool* pool, size_t size, const char* name) {
  if (!EnsureInit()) return nullptr;
  const size_t page = platform::PageSize();
  if (size == 0 || size > Window::size() / 2) {
    errno = ENOMEM;
    return nullptr;
  }
  size = RoundUp(size, page);
  const size_t span = RoundUp(size, kGranule) + kGranule;  // trailing guard granule
  const size_t bitmap_bytes = RoundUp(size >> kUnitShift, 64) / 8;

  Area* area = MetaNew<Area>();
  if (area == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  area->start_bits = static_cast<uint64_t*>(MetaAlloc(bitmap_bytes, /*zero=*/true));
  area->live_bits = static_cast<uint64_t*>(MetaAlloc(bitmap_bytes, /*zero=*/true));
  uintptr_t base = 0;
  if (area->start_bits != nullptr && area->live_bits != nullptr) {
    SpinLockHolder h(&window_lock);
    base = Carve(span);
  }
  if (base == 0 || !platform::MapArea(reinterpret_cast<void*>(base), size, name)) {
    const int saved = base == 0 ? ENOMEM : errno;
    if (base != 0) {
      SpinLockHolder h(&window_lock);
      if (free_ranges == nullptr) free_ranges = MetaNew<std::vector<Range, MetaAllocator<Range>>>();
      if (free_ranges != nullptr) free_ranges->push_back({base, span});
    }
    MetaFree(area->start_bits);
    MetaFree(area->live_bits);
    MetaDelete(area);
    errno = saved;
    return nullptr;
  }
  area->base = base;
  area->size = size;
  area->span = span;
  area->pool = pool;
  const uintptr_t first = (base - Window::base()) >> kGranuleShift;
  for (size_t g = 0; g < span >> kGranuleShift; ++g) {
    table_[first + g].store(area, std::memory_order_release);
  }
  return area;
}

bool Window::DeleteArea(Area* area) {
  if (!platform::Unmap(reinterpret_cast<void*>(area->base), area->size)) return false;
  const uintptr_t first = (area->base - Window::base()) >> kGranuleShift;
  for (size_t g = 0; g < area->span >> kGranuleShift; ++g) {
    table_[first + g].store(nullptr, std::memory_order_release);
  }
  {
    SpinLockHolder h(&window_lock);
    if (free_ranges == nullptr) free_ranges = MetaNew<std::vector<Range, MetaAllocator<Range>>>();
    // Losing a range to an allocation failure only wastes address space.
    if (free_ranges != nullptr) free_ranges->push_back({area->base, area->span});
  }
  MetaFree(area->start_bits);
  MetaFree(area->live_bits);
  MetaDelete(area);
  return true;
}

void Window::LockForFork() { window_lock.Lock(); }
void Window::UnlockAfterFork() { window_lock.Unlock(); }

}  // namespace pmalloc::internal
