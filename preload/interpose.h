// Helpers for the face's interposers of libc functions that are not allocation entry points
// (preload/serving_calls.cc, kernel_writes.cc, signals.cc): the next definition of a symbol
// (glibc's) found with dlsym(RTLD_NEXT), resolved by a constructor so that interposers
// called from signal handlers never call dlsym, and the after-call check for system calls
// that write user buffers.
#ifndef PMALLOC_PRELOAD_INTERPOSE_H_
#define PMALLOC_PRELOAD_INTERPOSE_H_

#include <errno.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/learn.h"

namespace pmalloc::preload {

// The next definition of `name` after libpmalloc (glibc's), stored in *slot. nullptr when
// there is none, unless `required`: then it aborts with one line.
void* ResolveNext(std::atomic<void*>* slot, const char* name, bool required);

// Resolved once, then one load.
template <typename Fn>
inline Fn Next(std::atomic<void*>* slot, const char* name) {
  void* p = slot->load(std::memory_order_acquire);
  if (__builtin_expect(p == nullptr, 0)) p = ResolveNext(slot, name, true);
  return reinterpret_cast<Fn>(p);
}

// After a system call that writes user buffers: the one well-predicted branch on the
// result (`r < 0 && errno == EFAULT`); on EFAULT, core/learn.h decides (enforcing: report
// and die; learn: record, unlock, retry once, relock). `buffers(out)` fills up to
// kMaxBuffers and returns the count; `retry()` re-issues the call.
inline constexpr size_t kMaxBuffers = 8;
template <typename R, typename Buffers, typename Retry>
__attribute__((always_inline)) inline R AfterKernelWrite(R r, const char* via, uintptr_t caller,
                                                         Buffers buffers, Retry retry) {
  if (__builtin_expect(r < 0, 0) && errno == EFAULT) {
    internal::UserBuffer bufs[kMaxBuffers];
    const size_t n = buffers(bufs);
    internal::UnlockedPages pages;
    if (internal::OnKernelWriteFault(via, bufs, n, caller, &pages)) {
      r = retry();
      internal::Relock(pages);
    }
  }
  return r;
}

inline uintptr_t Caller(void* ret) { return reinterpret_cast<uintptr_t>(ret); }

}  // namespace pmalloc::preload

// Declares the slot of the next definition of `sym`; PMALLOC_NEXT(sym) calls through it.
// A declaration, not an expression: no parentheses.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define PMALLOC_NEXT_SLOT(sym) \
  ABSL_CONST_INIT std::atomic<void*> next_##sym { nullptr }
// NOLINTEND(bugprone-macro-parentheses)
#define PMALLOC_NEXT(sym, type) (::pmalloc::preload::Next<type>(&next_##sym, #sym))
// For a constructor: resolves the slot early if the symbol exists.
#define PMALLOC_RESOLVE(sym) (void)::pmalloc::preload::ResolveNext(&next_##sym, #sym, false)
// The slots of every symbol `list` names (`list(X)` applies X to each name, so a file
// writes each interposed name once), and the constructor `resolve` that resolves them all
// at load time.
#define PMALLOC_NEXT_SLOT_DECLARATION_(sym) PMALLOC_NEXT_SLOT(sym);
#define PMALLOC_RESOLVE_STATEMENT_(sym) PMALLOC_RESOLVE(sym);
#define PMALLOC_NEXT_SLOTS(list, resolve)                                            \
  list(PMALLOC_NEXT_SLOT_DECLARATION_) __attribute__((constructor)) void resolve() { \
    list(PMALLOC_RESOLVE_STATEMENT_)                                                 \
  }

#endif  // PMALLOC_PRELOAD_INTERPOSE_H_
