#include "core/triggers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "absl/base/attributes.h"
#include "core/config.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/stats_report.h"

namespace pmalloc::internal {
namespace {

// lockdown:signal: the handler only writes to an eventfd (async-signal-safe); a helper
// thread with every signal blocked does the lockdown, which takes locks and may allocate
// metadata and so cannot run in the handler.
ABSL_CONST_INIT int signal_fd = -1;

void* LockdownThread(void*) {
  uint64_t n;
  while (true) {
    const ssize_t r = read(signal_fd, &n, sizeof(n));
    if (r == sizeof(n)) {
      ConfiguredLockdown("lockdown:signal");
    } else if (r < 0 && errno != EINTR) {
      return nullptr;
    }
  }
}

void OnSignal(int) {
  const int saved = errno;
  const uint64_t one = 1;
  (void)!write(signal_fd, &one, sizeof(one));
  errno = saved;
}

bool StartLockdownThread() {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // the thread inherits the full mask
  pthread_t t;
  const int err = pthread_create(&t, nullptr, LockdownThread, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err != 0) return false;
  pthread_detach(t);
  return true;
}

// The helper thread does not survive fork: the child starts its own.
void RestartInChild() { (void)StartLockdownThread(); }

void InstallSignalTrigger(int sig) {
  signal_fd = eventfd(0, EFD_CLOEXEC);
  if (signal_fd < 0 || !StartLockdownThread()) {
    LogLine line;
    line.Str("pmalloc: lockdown:signal: cannot start the lockdown thread (errno ")
        .Dec(errno)
        .Str("); trigger disabled");
    line.Emit();
    return;
  }
  pthread_atfork(nullptr, nullptr, RestartInChild);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

void CountPool(Pool*, void* arg) { ++*static_cast<size_t*>(arg); }

// Processes without pools (every child of a preloaded shell script) stay quiet.
void PrintStatsAtExit() {
  if (!GetConfig().stats_print) return;
  size_t pools = 0;
  Registry::ForEachPool(CountPool, &pools);
  if (pools != 0) PrintPoolStats();
}

__attribute__((constructor)) void InstallTriggers() {
  const Config& c = GetConfig();
  if (c.disable) return;
  if (c.lockdown.signal != 0) InstallSignalTrigger(c.lockdown.signal);
}

// Destructors of libpmalloc run after main's atexit handlers and the executable's static
// destructors: the table shows the final state.
__attribute__((destructor)) void AtExit() { PrintStatsAtExit(); }

}  // namespace

void ConfiguredLockdown(const char* why) {
  const Config& c = GetConfig();
  if (c.disable) return;
  if (Registry::Lockdown(c.seal ? PMALLOC_LOCKDOWN_SEAL : 0u) != 0) {
    LogLine line;
    line.Str("pmalloc: ").Str(why).Str(": pmalloc_lockdown failed, errno ").Dec(errno);
    line.Emit();
  }
}

void OnMainEntry() {
  if (GetConfig().lockdown.main) ConfiguredLockdown("lockdown:main");
}

}  // namespace pmalloc::internal
