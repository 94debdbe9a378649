// Learn mode (PMALLOC_CONF=learn:true or learn:permissive): lockdown happens as configured,
// but a write to a locked pool does not kill the process. The SIGSEGV handler
// (core/fault_report.cc) calls LearnFromWriteFault: the write is reported to the write
// observer (core/write_observer.h), the page is made writable, and the trap flag makes the
// CPU stop after the one faulting instruction; LearnFromTrap (SIGTRAP) then makes the page
// read-only again, so every later write faults and is recorded too. System calls that the
// kernel could not complete because a buffer is locked (EFAULT) are handled by
// OnKernelWriteFault for the wrappers of preload/kernel_writes.cc. docs/triggers.md.
//
// What learn mode covers: pools that pmalloc_lockdown() protects (not PMALLOC_POOL_MANUAL)
// and lockdown ranges; a MANUAL pool protected with pmalloc_protect_pool() faults as usual,
// and so does a sealed pool. x86-64 only (the trap flag); elsewhere learn mode reports and
// then behaves as enforcing mode.
#ifndef PMALLOC_CORE_LEARN_H_
#define PMALLOC_CORE_LEARN_H_

#include <signal.h>

#include <cstddef>
#include <cstdint>

namespace pmalloc::internal {

// SIGSEGV from the kernel: true when the fault was a learnable write and has been let
// through (the handler returns and the store completes). Async-signal-safe.
bool LearnFromWriteFault(siginfo_t* info, void* ucontext);

// SIGTRAP: true when it was this thread's single step after a learned write (the page is
// read-only again). False for every other trap. Async-signal-safe.
bool LearnFromTrap(siginfo_t* info, void* ucontext);

// A user buffer a system call writes.
struct UserBuffer {
  const void* addr;
  size_t len;
};

// Pages made writable for one retried system call (learn mode).
struct UnlockedPages {
  static constexpr int kMaxRuns = 8;
  uintptr_t start[kMaxRuns];
  size_t len[kMaxRuns];
  int runs = 0;
};

// After a system call `via` failed with EFAULT. When a buffer lies in a locked pool area or
// protected range: in enforcing mode the process dies with a report (DieOfKernelWrite); in
// learn mode the write is reported to the observer (pc = `caller`), the locked pages of the
// buffers are made writable into *out and true is returned: the caller retries the call
// once, then calls Relock(*out). False (errno still EFAULT) when the EFAULT is not
// pmalloc's. Async-signal-safe; costs nothing unless the call failed with EFAULT.
bool OnKernelWriteFault(const char* via, const UserBuffer* bufs, size_t n, uintptr_t caller,
                        UnlockedPages* out);

// Makes the pages read-only again. Keeps errno.
void Relock(const UnlockedPages& pages);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_LEARN_H_
