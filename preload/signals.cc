// sigaction() and signal() for SIGSEGV, SIGBUS (and SIGTRAP in learn mode) once pmalloc's
// fault handler is installed: the program's handler is recorded as the one pmalloc chains
// to for faults that are not pmalloc's, and pmalloc's handler stays installed, so a
// program that installs its own SIGSEGV handler after start-up (redis does) still gets
// pmalloc's report for a write to a locked pool. sigaction(sig, NULL, &old) reports the
// program's own action. Every other signal, and these before pmalloc installs its
// handler, go straight to glibc. Not covered: sigset(3), and rt_sigaction made through
// syscall(2). core/fault_report.h.
#include <errno.h>
#include <signal.h>

#include "core/fault_report.h"
#include "pmalloc/pmalloc.h"

namespace {

using pmalloc::internal::KeepsSignal;
using pmalloc::internal::RealSigaction;
using pmalloc::internal::SetProgramAction;

// signal(3) through sigaction with the given flags; glibc's mask is the signal itself for
// BSD semantics, empty for System V's.
sighandler_t Install(int sig, sighandler_t handler, int flags, bool mask_self) {
  struct sigaction act = {};
  struct sigaction old = {};
  act.sa_handler = handler;
  act.sa_flags = flags;
  sigemptyset(&act.sa_mask);
  if (mask_self) sigaddset(&act.sa_mask, sig);
  if (SetProgramAction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

}  // namespace

extern "C" {

PMALLOC_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
  if (KeepsSignal(sig)) return SetProgramAction(sig, act, old);
  return RealSigaction(sig, act, old);
}

// glibc's signal() calls its internal sigaction, not this symbol: interposed as well.
PMALLOC_EXPORT sighandler_t signal(int sig, sighandler_t handler) noexcept {
  if (handler == SIG_ERR || sig < 1 || sig >= NSIG) {
    errno = EINVAL;
    return SIG_ERR;
  }
  if (KeepsSignal(sig)) return Install(sig, handler, SA_RESTART, true);
  struct sigaction act = {};
  struct sigaction old = {};
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  if (sig > 0 && sig < NSIG) sigaddset(&act.sa_mask, sig);
  if (RealSigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

PMALLOC_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler) noexcept {
  return signal(sig, handler);
}

PMALLOC_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler) noexcept {
  if (handler == SIG_ERR || sig < 1 || sig >= NSIG) {
    errno = EINVAL;
    return SIG_ERR;
  }
  if (KeepsSignal(sig)) return Install(sig, handler, SA_RESETHAND | SA_NODEFER, false);
  struct sigaction act = {};
  struct sigaction old = {};
  act.sa_handler = handler;
  act.sa_flags = SA_RESETHAND | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  if (RealSigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

PMALLOC_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler) noexcept {
  return sysv_signal(sig, handler);
}

}  // extern "C"
