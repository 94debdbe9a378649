#include "core/object_check.h"

#include <errno.h>

#include <algorithm>

#include "core/block_map.h"
#include "core/window.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc::internal {

namespace {

// Index of the last set bit at or below `i`, or false when there is none.
bool PrevSetBit(const uint64_t* bits, size_t i, size_t* out) {
  size_t w = i >> 6;
  uint64_t word = LoadWord(bits, w) & (~uint64_t{0} >> (63 - (i & 63)));
  while (word == 0) {
    if (w == 0) return false;
    word = LoadWord(bits, --w);
  }
  *out = (w << 6) + 63 - static_cast<size_t>(__builtin_clzll(word));
  return true;
}

}  // namespace

bool LiveBlockAt(const Area* a, uintptr_t p, uintptr_t* start, size_t* size) {
  const BlockMap* m = BlockMapOf(a);
  if (m == nullptr) return false;
  const size_t bump = m->bump;  // one snapshot for the whole lookup
  const size_t off = p - a->base;
  if (off >= bump) return false;
  size_t i = 0;
  if (!PrevSetBit(m->start_bits, off >> kUnitShift, &i) || !TestBit(m->live_bits, i)) return false;
  *start = a->base + (i << kUnitShift);
  *size = m->BlockBytes(i, bump);
  return true;
}

ObjectCheck CheckObject(const void* ptr, size_t n) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  if (n == 0) return ObjectCheck::kNotPool;
  const uintptr_t base = Window::base();
  const uintptr_t window_end = base + Window::size();
  if (p + n < p) return Window::size() == 0 ? ObjectCheck::kNotPool : ObjectCheck::kCrosses;
  const uintptr_t end = p + n;
  if (end <= base || p >= window_end) return ObjectCheck::kNotPool;  // also: no window yet
  if (const Area* a = Window::AreaOf(ptr)) {
    uintptr_t start = 0;
    size_t size = 0;
    if (!LiveBlockAt(a, p, &start, &size)) return ObjectCheck::kCrosses;
    return end - start <= size ? ObjectCheck::kInside : ObjectCheck::kCrosses;
  }
  // p is in no area: the range touches pool memory if any of its granules' parts does.
  // Areas start on a granule and cover a prefix of their last granule, so the part of
  // the range in a granule touches an area exactly when its first byte does.
  for (uintptr_t g = (std::max(p, base) - base) >> kGranuleShift;; ++g) {
    const uintptr_t granule = base + (g << kGranuleShift);
    if (granule >= end || granule >= window_end) return ObjectCheck::kNotPool;
    if (Window::AreaOf(reinterpret_cast<const void*>(std::max(granule, p))) != nullptr) {
      return ObjectCheck::kCrosses;
    }
  }
}

}  // namespace pmalloc::internal

// The public face (pmalloc.h). Here rather than in c_api.cc: the check is all this file's.
extern "C" int pmalloc_check_object(const void* ptr, size_t n) {
  switch (pmalloc::internal::CheckObject(ptr, n)) {
    case pmalloc::internal::ObjectCheck::kInside:
      return 1;
    case pmalloc::internal::ObjectCheck::kNotPool:
      return 0;
    case pmalloc::internal::ObjectCheck::kCrosses:
      break;
  }
  errno = EFAULT;
  return -1;
}
