// Fault reports: a SIGSEGV/SIGBUS handler that, when a fault hits pmalloc's reserved window,
// writes one line to stderr naming the pool, the fault address, the allocation it falls in
// and the faulting instruction, then lets the fault take exactly the course it would have
// taken without pmalloc (the program's handler, or the default action: killed by the
// signal, core dump as configured). Faults outside the window go straight to the program's
// handler with nothing printed. Under learn mode (core/learn.h) a write to a locked pool is
// let through instead. User guide: docs/fault-reports.md.
//
// The handler stays first: the libc face (preload/signals.cc) hands a program's later
// sigaction()/signal() for SIGSEGV, SIGBUS (and SIGTRAP in learn mode) to
// SetProgramAction, which records the program's action as the one to chain to and reports
// it back to sigaction(sig, NULL, &old). Without the face (sanitizer builds) a program's
// later handler replaces pmalloc's.
//
// The handler is async-signal-safe: LogLine (write(2)), lock-free area lookups
// (Window::AreaOf, Pool::FindBlock) and absl::Symbolize, which allocates only from its own
// mmap-backed async-signal-safe arena. No malloc, no locks, no stdio.
#ifndef PMALLOC_CORE_FAULT_REPORT_H_
#define PMALLOC_CORE_FAULT_REPORT_H_

#include <signal.h>

#include <cstdint>

namespace pmalloc::internal {

// Installs the handler for SIGSEGV and SIGBUS (and SIGTRAP under learn mode), remembering
// the actions installed before. The first call costs a few sigaction(2) calls; later calls
// one atomic load. Thread-safe and idempotent: concurrent first callers return only once
// the handler is in place. Called when a pool is created or a range is first protected.
void InstallFaultHandler();

// glibc's sigaction(2), bypassing the face's interposer: what pmalloc itself uses.
// Async-signal-safe once InstallFaultHandler (or the library constructor) has run.
int RealSigaction(int sig, const struct sigaction* act, struct sigaction* old);

// True when pmalloc's handler for `sig` is installed and stays first: a program's
// sigaction for it goes to SetProgramAction. One atomic load.
bool KeepsSignal(int sig);

// sigaction(2) semantics for the program's view of `sig` (REQUIRES: KeepsSignal(sig)):
// *old gets the program's previous action, `act` (if not null) becomes the action that
// pmalloc chains to. Returns 0. Async-signal-safe (a short spin between writers, with
// signals blocked).
int SetProgramAction(int sig, const struct sigaction* act, struct sigaction* old);

// Installs pmalloc's handler for `sig` (learn mode's SIGUSR1, core/learn_report.h): it
// calls hook() (REQUIRES: async-signal-safe), then hands the signal to the program's action
// as a fault that is not pmalloc's is handed on: the program's handler with its mask and
// flags, the default action (terminate) or nothing if ignored. The face records the
// program's later sigaction()/signal() for `sig` as for SIGSEGV (KeepsSignal), and pmalloc's
// action takes the program's SA_RESTART. One signal per process; a second call only
// replaces the hook.
void InstallReportSignal(int sig, void (*hook)());

// A system call `via` failed with EFAULT because the kernel could not write `addr`, inside
// a locked pool or protected range: one report line naming the pool, allocation and call
// (like a write fault's), then the process takes a write fault's course: SIGSEGV to the
// program's handler or the default action (killed by SIGSEGV). `caller` is the return
// address into the code that made the call.
[[noreturn]] void DieOfKernelWrite(const char* via, const void* addr, uintptr_t caller);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_FAULT_REPORT_H_
