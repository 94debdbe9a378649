#include "core/ro_state.h"

#include <errno.h>
#include <pthread.h>

#include <atomic>
#include <cstring>

#include "absl/base/attributes.h"
#include "core/log.h"
#include "core/platform.h"

// The linker defines these for a section whose name is a C identifier. Weak: an image
// without RO objects links too (then both are null and there is nothing to lock).
extern "C" char __start_pmalloc_ro[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_pmalloc_ro[] __attribute__((weak, visibility("hidden")));

namespace pmalloc::internal {
namespace {

enum State : int { kOpen, kLocked, kSealed };
// Outside the section on purpose (it changes at lockdown). A forged kOpen only makes the
// next write fault; it never makes the section writable.
ABSL_CONST_INIT std::atomic<int> state{kOpen};
ABSL_CONST_INIT std::atomic<bool> writer{false};

uintptr_t Start() { return reinterpret_cast<uintptr_t>(__start_pmalloc_ro); }
size_t Size() {
  return reinterpret_cast<uintptr_t>(__stop_pmalloc_ro) -
         reinterpret_cast<uintptr_t>(__start_pmalloc_ro);
}

// The section is protectable: non-empty whole pages of the running system.
bool Protectable() {
  const size_t page = platform::PageSize();
  return Size() != 0 && (Start() & (page - 1)) == 0 && (Size() & (page - 1)) == 0;
}

// Moves the read-only range [p, p+Size()) onto a fresh memfd, mapped read-only MAP_SHARED at
// the same address: a read-only shared mapping refuses /proc/PID/mem and ptrace writes
// (FOLL_FORCE), which a read-only private one lets through. Every page is copied (the
// section is file-backed .data/.bss of the library, or a copy of it). On failure the range
// keeps its mprotect and one line (once) says the section is weaker than the pools.
void MoveOntoMemfd(void* p) {
  if (platform::RemapSharedReadOnly(p, Size(), Size(), "pmalloc-ro", platform::CopyPages::kAll)) {
    return;
  }
  static bool warned = false;  // guarded by the writer lock
  if (warned) return;
  warned = true;
  LogLine line;
  line.Str("pmalloc: section pmalloc_ro: cannot move to a shared mapping (errno ")
      .Dec(static_cast<uint64_t>(errno))
      .Str("): read-only with mprotect only, /proc/PID/mem can still write it");
  line.Emit();
}

void LockWriter(sigset_t* saved) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, saved);
  while (writer.exchange(true, std::memory_order_acquire)) {
  }
}

void UnlockWriter(const sigset_t* saved) {
  writer.store(false, std::memory_order_release);
  pthread_sigmask(SIG_SETMASK, saved, nullptr);
}

}  // namespace

RoWrite::RoWrite() {
  LockWriter(&saved_mask_);
  const int s = state.load(std::memory_order_relaxed);
  if (s == kOpen) return;
  if (s == kSealed) {
    ok_ = false;
    errno = EPERM;
    return;
  }
  void* copy = platform::AllocatePages(Size());
  if (copy == nullptr) {
    ok_ = false;
    errno = ENOMEM;
    return;
  }
  memcpy(copy, __start_pmalloc_ro, Size());
  delta_ = reinterpret_cast<uintptr_t>(copy) - Start();
}

bool RoWrite::Commit() {
  if (done_) return ok_;
  done_ = true;
  if (!ok_ || delta_ == 0) return ok_;
  void* copy = reinterpret_cast<void*>(Start() + delta_);
  const bool ro = platform::ProtectReadOnly(copy, Size());
  if (ro) MoveOntoMemfd(copy);  // before the move: the section is never a weaker mapping
  if (!ro || !platform::MoveOver(copy, __start_pmalloc_ro, Size())) {
    const int err = errno;
    (void)platform::FreePages(copy, Size());
    errno = err;
    ok_ = false;
  }
  return ok_;
}

RoWrite::~RoWrite() {
  const int saved = errno;
  (void)Commit();
  UnlockWriter(&saved_mask_);
  errno = saved;
}

int LockRoState(bool seal) {
  sigset_t saved;
  LockWriter(&saved);
  int err = 0;
  if (!Protectable()) {
    static bool warned = false;  // guarded by the writer lock
    if (Size() != 0 && !warned) {
      warned = true;
      LogLine line;
      line.Str("pmalloc: section pmalloc_ro is not whole pages of this system: left writable");
      line.Emit();
    }
  } else {
    if (state.load(std::memory_order_relaxed) == kOpen) {
      // mprotect first: a store racing lockdown lands before it or faults, never lost in
      // the copy onto the memfd.
      if (platform::ProtectReadOnly(__start_pmalloc_ro, Size())) {
        MoveOntoMemfd(__start_pmalloc_ro);
        state.store(kLocked, std::memory_order_relaxed);
      } else {
        err = errno;
      }
    }
    if (seal && err == 0 && state.load(std::memory_order_relaxed) == kLocked) {
      if (platform::Seal(__start_pmalloc_ro, Size())) {
        state.store(kSealed, std::memory_order_relaxed);
      } else {
        err = errno;
      }
    }
  }
  UnlockWriter(&saved);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}

void RoStateBounds(uintptr_t* start, uintptr_t* end) {
  *start = Start();
  *end = Start() + Size();
}

bool RoStateLocked() { return state.load(std::memory_order_acquire) != kOpen; }

}  // namespace pmalloc::internal
