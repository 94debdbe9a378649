// Every fixed message pmalloc aborts with, one function each (tcmalloc's error_reporting.h
// is the model). A misuse that is memory corruption, or a protection that cannot be kept,
// ends the process here: one line on stderr (core/log.h: write(2), no heap, no stdio, no
// lock, so these may run on the malloc path), then abort() (SIGABRT).
//
// The messages are part of the API: pmalloc.h and pmalloc/compat/cache.h document them,
// docs/design.md §9 lists them, and tests/misuse/expected.txt checks each one exactly,
// so change all four together. <addr> is 0x-prefixed lower-case hex.
#ifndef PMALLOC_CORE_FATAL_H_
#define PMALLOC_CORE_FATAL_H_

#include <cstddef>

namespace pmalloc::internal {

// pfree(pool, p) where p is not the start of an allocation of `pool` (never allocated,
// inside a block, or another pool's block):
//   pmalloc: pfree(): invalid pointer <addr> for pool '<pool>'
[[noreturn]] void FatalInvalidPfree(const void* p, const char* pool);

// pfree(pool, p) of a block of `pool` that is already free:
//   pmalloc: pfree(): double free of <addr> in pool '<pool>'
[[noreturn]] void FatalDoublePfree(const void* p, const char* pool);

// The libc face's free/realloc (`call`) got a pointer inside the pool window that is in no
// live pool area (a destroyed pool's, or a stray one):
//   pmalloc: <call>(): invalid pointer <addr> (inside the pool window, in no live pool area)
[[noreturn]] void FatalNotInPool(const char* call, const void* p);

// compat: a module's __ro_after_init section [start, stop) is not whole pages:
//   pmalloc: not whole pages: __ro_after_init section <start>-<stop> of '<module>'
[[noreturn]] void FatalRoAfterInitNotWholePages(const void* start, const void* stop,
                                                const char* module);

// compat: pmalloc_register_lockdown_range refused the section (e.g. ENOMEM):
//   pmalloc: cannot register __ro_after_init section <start>-<stop> of '<module>'
[[noreturn]] void FatalRoAfterInitNotRegistered(const void* start, const void* stop,
                                                const char* module);

// compat: the executable holds a copy (copy relocation) of a module's __ro_after_init
// variable, which would stay writable:
//   pmalloc: __ro_after_init variable '<name>' of '<module>' was copied into the executable
//   (copy relocation) and would stay writable: make it static or hidden
// (one line).
[[noreturn]] void FatalRoAfterInitCopied(const char* variable, const char* module);

// pmalloc_wr_*: the bytes read back through the object's own address after a write-rare
// update are not the ones written (another writer of the pool's memfd, or a mapping that is
// not the pool's):
//   pmalloc: write-rare update of <addr> in pool '<pool>' did not read back
[[noreturn]] void FatalWriteRareMismatch(const void* p, const char* pool);

// preload: the __libc_start_main hook cannot find glibc's own:
//   pmalloc: cannot find glibc's __libc_start_main
[[noreturn]] void FatalNoLibcStartMain();

// preload: an interposer of a libc function (serving calls, system calls that write user
// buffers) cannot find glibc's `name` when it is first called:
//   pmalloc: cannot find glibc's <name>
[[noreturn]] void FatalNoLibcFunction(const char* name);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_FATAL_H_
