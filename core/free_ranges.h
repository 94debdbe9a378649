// A coalescing set of free address ranges, indexed by address (to merge a returned range with
// its free neighbours) and by (length, address) (best fit, lowest address among equals). The
// window keeps the address ranges of destroyed areas in one (window.cc); each pool keeps its
// free blocks above 1 KiB in one (pool.cc). Insert, take and lookup cost O(log n) in the
// number of ranges. Not thread-safe: the owner's lock guards it. Node memory comes from
// MetaAllocator (never from the pools); a node that cannot be allocated only loses the
// range (it is not reused), never corrupts the set.
#ifndef PMALLOC_CORE_FREE_RANGES_H_
#define PMALLOC_CORE_FREE_RANGES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <new>
#include <set>
#include <utility>

#include "core/meta_allocator.h"

namespace pmalloc::internal {

class FreeRanges {
 public:
  struct Range {
    uintptr_t start = 0;
    size_t len = 0;  // 0: no range
  };

  // Adds [start, start+len), merged with the range that ends at `start` and the one that
  // begins at its end. `absorbed(s)` is called for each start `s` that stops being the start
  // of a range by the merge (the following range's start; `start` itself when it joins the
  // range before it). Returns the merged range. REQUIRES: no overlap with a range in the set.
  template <class Absorbed>
  Range Insert(uintptr_t start, size_t len, Absorbed&& absorbed) {
    auto next = by_addr_.lower_bound(start);
    if (next != by_addr_.end() && next->first == start + len) {
      absorbed(next->first);
      len += next->second;
      next = Erase(next);
    }
    if (next != by_addr_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == start) {
        absorbed(start);
        start = prev->first;
        len += prev->second;
        Erase(prev);
      }
    }
    try {
      by_addr_.emplace(start, len);
      try {
        by_size_.emplace(len, start);
      } catch (const std::bad_alloc&) {
        by_addr_.erase(start);
      }
    } catch (const std::bad_alloc&) {
      // Out of metadata memory: the (merged) range is simply not reused.
    }
    return {start, len};
  }
  Range Insert(uintptr_t start, size_t len) {
    return Insert(start, len, [](uintptr_t) {});
  }

  // Removes and returns the smallest range of at least `len` bytes (lowest address among
  // equals), or a Range of length 0.
  Range TakeBestFit(size_t len) {
    auto fit = by_size_.lower_bound({len, 0});
    if (fit == by_size_.end()) return {};
    const Range r{fit->second, fit->first};
    by_size_.erase(fit);
    by_addr_.erase(r.start);
    return r;
  }

  // The range that starts at `start`, or a Range of length 0.
  Range At(uintptr_t start) const {
    auto it = by_addr_.find(start);
    if (it == by_addr_.end()) return {};
    return {it->first, it->second};
  }

  // Removes and returns the range that starts at `start`, or a Range of length 0.
  Range TakeAt(uintptr_t start) {
    auto it = by_addr_.find(start);
    if (it == by_addr_.end()) return {};
    const Range r{it->first, it->second};
    Erase(it);
    return r;
  }

  // The range at the highest address, or a Range of length 0.
  Range Last() const {
    if (by_addr_.empty()) return {};
    auto last = std::prev(by_addr_.end());
    return {last->first, last->second};
  }

  // True when `p` lies inside a range of the set.
  bool Contains(uintptr_t p) const {
    auto it = by_addr_.upper_bound(p);
    if (it == by_addr_.begin()) return false;
    --it;
    return p - it->first < it->second;
  }

  void Clear() {
    by_addr_.clear();
    by_size_.clear();
  }

 private:
  using ByAddr = std::map<uintptr_t, size_t, std::less<uintptr_t>,
                          MetaAllocator<std::pair<const uintptr_t, size_t>>>;
  using BySize = std::set<std::pair<size_t, uintptr_t>, std::less<std::pair<size_t, uintptr_t>>,
                          MetaAllocator<std::pair<size_t, uintptr_t>>>;

  ByAddr::iterator Erase(ByAddr::iterator it) {
    by_size_.erase({it->second, it->first});
    return by_addr_.erase(it);
  }

  ByAddr by_addr_;
  BySize by_size_;
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_FREE_RANGES_H_
