// jemalloc's entry points as the libc face calls them: a table of its own malloc, free,
// calloc, realloc, operator new and sized delete, resolved once by a library constructor.
// Only preload/ uses it: the face sends untagged traffic here (see preload/route.h).
#ifndef PMALLOC_PRELOAD_JEMALLOC_ENTRY_H_
#define PMALLOC_PRELOAD_JEMALLOC_ENTRY_H_

#include <jemalloc/jemalloc.h>

#include <atomic>
#include <cstddef>
#include <new>

#include "core/ro_state.h"

namespace pmalloc::internal::route {

// jemalloc's own malloc/free/calloc/realloc (its fastest entry points). Until the library
// constructor resolves them they point at mallocx-based equivalents, so the face works
// before pmalloc initialises; both are the same jemalloc heap.
// The types are noexcept so that the face's noexcept functions can tail-call them (a call
// that may throw needs a terminate landing pad, which forbids the jump).
// Every malloc and free jumps through it: it lives in the read-only-after-lockdown section
// (core/ro_state.h), so a page of its own; writes go through RoWrite.
struct alignas(kRoPage) JeFns {
  std::atomic<void* (*)(size_t) noexcept> malloc;
  std::atomic<void (*)(void*) noexcept> free;
  std::atomic<void* (*)(size_t, size_t) noexcept> calloc;
  std::atomic<void* (*)(void*, size_t) noexcept> realloc;
  // jemalloc's operator new forms: a tail call keeps the untagged new path as short as
  // malloc's (the result check and the new_handler loop happen inside jemalloc).
  std::atomic<void* (*)(size_t)> new_;
  std::atomic<void* (*)(size_t, const std::nothrow_t&) noexcept> new_nothrow;
  std::atomic<void* (*)(size_t, std::align_val_t)> new_aligned;
  std::atomic<void* (*)(size_t, std::align_val_t, const std::nothrow_t&) noexcept>
      new_aligned_nothrow;
  // jemalloc's sized operator delete forms (they accept nullptr).
  std::atomic<void (*)(void*, size_t) noexcept> sized_delete;
  std::atomic<void (*)(void*, size_t, std::align_val_t) noexcept> sized_aligned_delete;
};
static_assert(sizeof(JeFns) % kRoPage == 0);
// Hidden: read with one rip-relative load instead of a GOT indirection.
extern JeFns je __attribute__((visibility("hidden")));

// jemalloc allocation aligned to `align` (mallocx). errno ENOMEM on failure.
// REQUIRES: align is a power of two.
void* AlignedUntagged(size_t align, size_t size) noexcept;

}  // namespace pmalloc::internal::route

#endif  // PMALLOC_PRELOAD_JEMALLOC_ENTRY_H_
