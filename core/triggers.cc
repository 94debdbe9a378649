#include "core/triggers.h"

#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
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
//
// The helper must not change the program's lifetime: glibc ends the process with exit(0)
// when its count of running threads drops to zero (the last thread returns, or main calls
// pthread_exit), and a counted helper that never returns would keep the process alive for
// ever, deaf to SIGTERM (every signal blocked). So the helper is taken out of that count:
// glibc's __nptl_nthreads (GLIBC_PRIVATE; the counter thread_db reads) is decremented once
// pthread_create has counted it. When the program's last thread ends, exit_group ends the
// helper wherever it is, as it does for any thread at exit. Without that symbol (not glibc)
// the helper stays counted and one line says so. Measured (trigger_test): pthread_exit from
// main exits 0, a lockdown after main exited still happens, SIGTERM still kills.
ABSL_CONST_INIT int signal_fd = -1;

unsigned int* GlibcThreadCount() {
  static unsigned int* const count =
      static_cast<unsigned int*>(dlvsym(RTLD_DEFAULT, "__nptl_nthreads", "GLIBC_PRIVATE"));
  return count;
}

void* LockdownThread(void*) {
  uint64_t n;
  while (true) {
    const ssize_t r = read(signal_fd, &n, sizeof(n));
    if (r == sizeof(n)) {
      ConfiguredLockdown("lockdown:signal");
    } else if (r < 0 && errno != EINTR) {
      // Counted again before glibc's thread exit takes it off the count.
      if (unsigned int* count = GlibcThreadCount()) __atomic_add_fetch(count, 1, __ATOMIC_SEQ_CST);
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

// REQUIRES: the calling thread is running (it keeps the count above zero meanwhile).
bool StartLockdownThread() {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // the thread inherits the full mask
  pthread_t t;
  const int err = pthread_create(&t, nullptr, LockdownThread, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err != 0) return false;
  pthread_detach(t);
  if (unsigned int* count = GlibcThreadCount()) __atomic_sub_fetch(count, 1, __ATOMIC_SEQ_CST);
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
  if (GlibcThreadCount() == nullptr) {
    LogLine line;
    line.Str("pmalloc: lockdown:signal: glibc's thread count not found: the lockdown thread ");
    line.Str("keeps the process alive after its last own thread (pthread_exit from main)");
    line.Emit();
  }
  pthread_atfork(nullptr, nullptr, RestartInChild);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

// --- lockdown:call:, lockdown:serve (the interposers are in preload/serving_calls.cc) ---
// One state word: armed, running (the first qualifying caller is locking down), done.
enum ServingState : int { kArmed, kRunning, kDone };
ABSL_CONST_INIT std::atomic<int> serving_state{kDone};
// The thread running the lockdown must not wait for itself (a signal handler on it may
// make a serving call: poll is async-signal-safe).
__attribute__((tls_model("initial-exec"))) thread_local bool locking_down = false;

int Futex(std::atomic<int>* word, int op, int val) {
  return static_cast<int>(
      syscall(SYS_futex, reinterpret_cast<int*>(word), op, val, nullptr, nullptr, 0));
}

void WaitForServingLockdown() {
  while (serving_state.load(std::memory_order_acquire) == kRunning && !locking_down) {
    Futex(&serving_state, FUTEX_WAIT_PRIVATE, kRunning);
  }
}

bool OnMainThread() { return syscall(SYS_gettid) == getpid(); }

// --- lockdown:after:DURATION ---
ABSL_CONST_INIT timespec after_deadline = {};  // CLOCK_MONOTONIC
ABSL_CONST_INIT std::atomic<bool> after_fired{false};
ABSL_CONST_INIT pthread_t after_main = {};  // the thread whose exit cancels the timer

// Waits for the deadline without keeping the process alive or taking signals: it joins the
// main thread with a timeout, so a main thread leaving by pthread_exit() ends the wait
// (and the trigger, with one line) instead of the process living on until the deadline.
// Every signal is blocked, so none is delivered to it instead of to a program thread.
void* AfterThread(void*) {
  const int r = pthread_clockjoin_np(after_main, nullptr, CLOCK_MONOTONIC, &after_deadline);
  if (r == 0) {
    LogLine line;
    line.Str("pmalloc: lockdown:after: the main thread exited before the deadline; no lockdown");
    line.Emit();
    return nullptr;
  }
  if (r != ETIMEDOUT) {  // main was detached or joined by someone else: a plain sleep
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &after_deadline, nullptr) == EINTR) {
    }
  }
  if (!after_fired.exchange(true, std::memory_order_acq_rel)) ConfiguredLockdown("lockdown:after");
  return nullptr;
}

void StartAfterThread() {
  after_main = pthread_self();
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // the thread inherits the full mask
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 << 10);
  pthread_t t;
  const int err = pthread_create(&t, &attr, AfterThread, nullptr);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err != 0) {
    LogLine line;
    line.Str("pmalloc: lockdown:after: cannot start the timer thread (errno ")
        .Dec(static_cast<uint64_t>(err))
        .Str("); trigger disabled");
    line.Emit();
  }
}

// A child inherits a lockdown its parent finished; a trigger it has not seen fire yet is
// the child's own: the serving trigger stays armed, the timer restarts (same deadline).
void ServingAndAfterInChild() {
  const LockdownTrigger& t = GetConfig().lockdown;
  if (serving_state.load(std::memory_order_relaxed) == kRunning) {
    // The parent's lockdown ran in another thread: the registry's fork handlers let fork
    // in before or after it, never during.
    serving_state.store(Registry::LockedDown() ? kDone : kArmed, std::memory_order_relaxed);
    serving_trigger_armed.store(serving_state.load() != kDone, std::memory_order_relaxed);
  }
  locking_down = false;
  if (t.after_ns != 0 && !t.api && !after_fired.load(std::memory_order_relaxed)) {
    StartAfterThread();
  }
}

void InstallServingAndAfter(const LockdownTrigger& t) {
  if (t.calls != 0 || t.serve) {
    serving_state.store(kArmed, std::memory_order_relaxed);
    serving_trigger_armed.store(true, std::memory_order_release);
  }
  if (t.after_ns != 0) {
    clock_gettime(CLOCK_MONOTONIC, &after_deadline);
    const uint64_t ns = static_cast<uint64_t>(after_deadline.tv_nsec) + t.after_ns;
    after_deadline.tv_sec += static_cast<time_t>(ns / 1000000000u);
    after_deadline.tv_nsec = static_cast<long>(ns % 1000000000u);
    StartAfterThread();
  }
  if (t.calls != 0 || t.serve || t.after_ns != 0) {
    pthread_atfork(nullptr, nullptr, ServingAndAfterInChild);
  }
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
  LockdownTrigger t = c.lockdown;
  if (t.api && (t.main || t.signal != 0 || t.calls != 0 || t.serve || t.after_ns != 0)) {
    LogLine line;
    line.Str(
        "pmalloc: PMALLOC_CONF: lockdown:api: only pmalloc_lockdown() locks; the other "
        "lockdown triggers are ignored");
    line.Emit();
    return;
  }
  if (t.signal != 0) InstallSignalTrigger(t.signal);
  InstallServingAndAfter(t);
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
  const LockdownTrigger& t = GetConfig().lockdown;
  if (t.main && !t.api) ConfiguredLockdown("lockdown:main");
}

ABSL_CONST_INIT std::atomic<bool> serving_trigger_armed{false};

void OnServingCall(ServingCall call) {
  const int saved = errno;
  const LockdownTrigger& t = GetConfig().lockdown;
  const uint32_t bit = 1u << call;
  int state = serving_state.load(std::memory_order_acquire);
  if (state == kArmed &&
      ((t.calls & bit) != 0 || (t.serve && (kServeMask & bit) != 0 && OnMainThread())) &&
      serving_state.compare_exchange_strong(state, kRunning, std::memory_order_acq_rel)) {
    char why[48];
    strcpy(why, (t.calls & bit) != 0 ? "lockdown:call:" : "lockdown:serve:");
    strcat(why, kServingCallNames[call]);
    locking_down = true;
    ConfiguredLockdown(why);
    locking_down = false;
    serving_state.store(kDone, std::memory_order_release);
    serving_trigger_armed.store(false, std::memory_order_relaxed);
    Futex(&serving_state, FUTEX_WAKE_PRIVATE, INT32_MAX);
  } else if (state == kRunning) {
    WaitForServingLockdown();
  }
  errno = saved;
}

}  // namespace pmalloc::internal
