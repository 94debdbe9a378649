// Tag routing: the one place that decides where an allocation made through the libc face
// goes. Untagged traffic (no scope on this thread, pointer outside the pool window) goes to
// jemalloc; tagged allocations go to the scope's pool; pool pointers go back to their pool.
//
// The untagged path costs one TLS load (allocation) or one subtract-and-compare (free) on
// top of jemalloc, and never locks, allocates or touches the registry. Everything else is
// out of line (route.cc, and core/pool_pointer.h for pool pointers). The face
// (libc_face.cc, new_delete.cc) is one-line forwarders into these functions; each follows
// glibc's contract (errno ENOMEM on failure, NULL/EINVAL rules in libc_face). Untagged
// calls go through jemalloc_entry.h's table.
#ifndef PMALLOC_PRELOAD_ROUTE_H_
#define PMALLOC_PRELOAD_ROUTE_H_

#include <errno.h>
#include <jemalloc/jemalloc.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "absl/base/optimization.h"
#include "core/pool_pointer.h"
#include "core/scope.h"
#include "core/window.h"
#include "preload/jemalloc_entry.h"

namespace pmalloc::internal::route {

// Out of line (route.cc): tagged allocation and failure paths. Pool frees, pool realloc and
// pool usable size are core/pool_pointer.h.
void* TaggedAlloc(Pool* pool, size_t size, size_t align, bool zero) noexcept;
void* TaggedCalloc(Pool* pool, size_t n, size_t size) noexcept;
// realloc of a pool block: PoolRealloc (it stays in its pool; EPERM once protected), except
// for a rule-tagged block (tag:startup, core/sites.h BlockSite) whose area is read-only: it
// moves to untagged jemalloc memory (copied; the old block is freed, i.e. un-accounted),
// because unmodified programs cannot handle EPERM. A rule-tagged block that moves inside
// its pool keeps its site. The explicit API's blocks keep the EPERM.
void* ReallocPoolBlock(void* p, size_t size) noexcept;
// jemalloc realloc of size 0 (glibc: free, return NULL) or above kMaxObjectSize (ENOMEM:
// jemalloc's realloc fails there without setting errno).
void* ReallocEdge(void* p, size_t size) noexcept;

// No object may exceed PTRDIFF_MAX bytes.
inline constexpr size_t kMaxObjectSize = size_t{PTRDIFF_MAX};
// Tagged new: the pool allocation, then the new_handler loop / bad_alloc on failure.
void* TaggedNew(Pool* pool, size_t size, size_t align);
void* TaggedNewNothrow(Pool* pool, size_t size, size_t align) noexcept;
// Untagged new before jemalloc's own is resolved (same contract).
void* NewFailed(size_t size, size_t align, bool nothrow);

inline void* Malloc(size_t size) {
  Pool* pool = tls_scope;
  if (ABSL_PREDICT_FALSE(pool != nullptr)) return TaggedAlloc(pool, size, 0, false);
  return je.malloc.load(std::memory_order_relaxed)(size);
}

inline void* Calloc(size_t n, size_t size) {
  Pool* pool = tls_scope;
  if (ABSL_PREDICT_FALSE(pool != nullptr)) return TaggedCalloc(pool, n, size);
  return je.calloc.load(std::memory_order_relaxed)(n, size);
}

// REQUIRES: align is a power of two.
inline void* Memalign(size_t align, size_t size) {
  Pool* pool = tls_scope;
  if (ABSL_PREDICT_FALSE(pool != nullptr)) return TaggedAlloc(pool, size, align, false);
  // jemalloc's malloc aligns to 8 only below 16 bytes (its 8-byte size class) and to at
  // least 16 from 16 bytes up (every larger class is a multiple of 16): asking for at
  // least `align` bytes gives the alignment without mallocx's slower path.
  if (align <= kMallocAlignment) {
    return je.malloc.load(std::memory_order_relaxed)(size < align ? align : size);
  }
  return AlignedUntagged(align, size);
}

inline void Free(void* p) {
  if (ABSL_PREDICT_FALSE(Window::Contains(p))) return PoolFree(p);
  je.free.load(std::memory_order_relaxed)(p);
}

// C++ sized delete: `size` is the size passed to new. p may be nullptr.
inline void SizedFree(void* p, size_t size) noexcept {
  if (ABSL_PREDICT_FALSE(Window::Contains(p))) return PoolFree(p);
  je.sized_delete.load(std::memory_order_relaxed)(p, size);
}

// new(0, align) allocated a 1-byte block (jemalloc's aligned new and AlignedUntagged alike),
// but jemalloc 5.3's sized aligned delete classifies (0, align) as its smallest size class
// and would file the block there: the next small malloc gets it back while jemalloc still
// counts it in its real class (heap corruption). So size 0 is passed on as 1.
inline void SizedAlignedFree(void* p, size_t size, std::align_val_t align) noexcept {
  if (ABSL_PREDICT_FALSE(Window::Contains(p))) return PoolFree(p);
  je.sized_aligned_delete.load(std::memory_order_relaxed)(p, size == 0 ? 1 : size, align);
}

// glibc realloc: NULL pointer is malloc; size 0 frees and returns NULL; a pool block
// stays in its pool (EPERM when its area is read-only, block untouched; but see
// ReallocPoolBlock for rule-tagged blocks). Untagged memory stays in jemalloc even inside a
// scope.
inline void* Realloc(void* p, size_t size) {
  if (p == nullptr) return Malloc(size);
  if (ABSL_PREDICT_FALSE(Window::Contains(p))) return ReallocPoolBlock(p, size);
  if (ABSL_PREDICT_FALSE(size == 0 || size > kMaxObjectSize)) return ReallocEdge(p, size);
  return je.realloc.load(std::memory_order_relaxed)(p, size);  // a tail call
}

inline size_t UsableSize(const void* p) {
  if (p == nullptr) return 0;
  if (ABSL_PREDICT_FALSE(Window::Contains(p))) return PoolUsableSize(p);
  return sallocx(const_cast<void*>(p), 0);
}

// operator new: throws std::bad_alloc after the new_handler loop, never returns nullptr.
inline void* New(size_t size) {
  Pool* pool = tls_scope;
  if (ABSL_PREDICT_FALSE(pool != nullptr)) return TaggedNew(pool, size, 0);
  return je.new_.load(std::memory_order_relaxed)(size);
}

inline void* NewNothrow(size_t size) noexcept {
  Pool* pool = tls_scope;
  if (ABSL_PREDICT_FALSE(pool != nullptr)) return TaggedNewNothrow(pool, size, 0);
  return je.new_nothrow.load(std::memory_order_relaxed)(size, std::nothrow);
}

inline void* NewAligned(size_t size, std::align_val_t align) {
  Pool* pool = tls_scope;
  if (ABSL_PREDICT_FALSE(pool != nullptr)) {
    return TaggedNew(pool, size, static_cast<size_t>(align));
  }
  return je.new_aligned.load(std::memory_order_relaxed)(size, align);
}

inline void* NewAlignedNothrow(size_t size, std::align_val_t align) noexcept {
  Pool* pool = tls_scope;
  if (ABSL_PREDICT_FALSE(pool != nullptr)) {
    return TaggedNewNothrow(pool, size, static_cast<size_t>(align));
  }
  return je.new_aligned_nothrow.load(std::memory_order_relaxed)(size, align, std::nothrow);
}

}  // namespace pmalloc::internal::route

#endif  // PMALLOC_PRELOAD_ROUTE_H_
