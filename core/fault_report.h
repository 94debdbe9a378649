// Fault reports: a SIGSEGV/SIGBUS handler that, when a fault hits pmalloc's reserved window,
// writes one line to stderr naming the pool, the fault address, the allocation it falls in
// and the faulting instruction, then lets the fault take exactly the course it would have
// taken without pmalloc (the previously installed handler, or the default action: killed by
// the signal, core dump as configured). Faults outside the window go straight to the
// previous handler with nothing printed. User guide: docs/fault-reports.md.
//
// The handler is async-signal-safe: LogLine (write(2)), lock-free area lookups
// (Window::AreaOf, Pool::FindBlock) and absl::Symbolize, which allocates only from its own
// mmap-backed async-signal-safe arena. No malloc, no locks, no stdio.
#ifndef PMALLOC_CORE_FAULT_REPORT_H_
#define PMALLOC_CORE_FAULT_REPORT_H_

namespace pmalloc::internal {

// Installs the handler for SIGSEGV and SIGBUS, remembering the actions installed before.
// The first call costs four sigaction(2) calls; later calls one atomic load. Thread-safe and
// idempotent: concurrent first callers return only once the handler is in place. Called
// when a pool is created, so linked and preloaded use both get it; a handler the program
// installs afterwards replaces it (pmalloc then sees no faults at all).
void InstallFaultHandler();

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_FAULT_REPORT_H_
