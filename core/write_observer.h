// The write observer: who is told about a write to a locked pool that learn mode let
// through (core/learn.h calls NotifyWrite from its SIGSEGV handler and from the system call
// wrappers of preload/kernel_writes.cc). The recording itself (sites, reports) is the
// observer's business. REQUIRES of the observer: async-signal-safe (no malloc, no locks that
// an interrupted thread may hold, no stdio), since it runs inside signal handlers.
#ifndef PMALLOC_CORE_WRITE_OBSERVER_H_
#define PMALLOC_CORE_WRITE_OBSERVER_H_

#include <cstdint>

namespace pmalloc::internal {

// addr: the written address; pc: the writing instruction (a store) or the return address
// into the caller of the system call; via: "store" or the system call's name ("read", ...).
using WriteObserver = void (*)(const void* addr, uintptr_t pc, const char* via);

// Sets the observer (a global function pointer, set once at init; nullptr: none).
void SetWriteObserver(WriteObserver fn);

// Calls the observer if one is set. Async-signal-safe; one atomic load when none is set.
void NotifyWrite(const void* addr, uintptr_t pc, const char* via);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_WRITE_OBSERVER_H_
