// A program for fault_report_test: each mode sets up signal handlers in a fresh process (so
// the order "installed before / after pmalloc" is under control) and then faults.
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "pmalloc/pmalloc.h"

namespace {

// Bytes the kernel's signal frame takes on an alternate stack: a probe signal delivered on
// a 64 KiB alternate stack notes how far below the stack's top its handler runs.
uintptr_t probe_top = 0;
uintptr_t probe_used = 0;
void OnProbe(int) {
  char here;
  probe_used = probe_top - reinterpret_cast<uintptr_t>(&here);
}
size_t SignalFrameBytes() {
  static char probe_stack[64 << 10];
  stack_t ss = {};
  stack_t old = {};
  ss.ss_sp = probe_stack;
  ss.ss_size = sizeof(probe_stack);
  probe_top = reinterpret_cast<uintptr_t>(probe_stack) + sizeof(probe_stack);
  struct sigaction act = {};
  struct sigaction prev = {};
  act.sa_handler = OnProbe;
  act.sa_flags = SA_ONSTACK;
  sigemptyset(&act.sa_mask);
  if (sigaltstack(&ss, &old) != 0 || sigaction(SIGUSR1, &act, &prev) != 0) abort();
  raise(SIGUSR1);
  sigaction(SIGUSR1, &prev, nullptr);
  sigaltstack(&old, nullptr);
  if (probe_used == 0 || probe_used > sizeof(probe_stack)) abort();
  return probe_used;
}

[[noreturn]] void ExitOnSiginfo(int, siginfo_t*, void*) { _exit(42); }
[[noreturn]] void ExitOnPlain(int) { _exit(43); }
[[noreturn]] void ExitAfterPmalloc(int, siginfo_t*, void*) { _exit(44); }

char* read_only_page = nullptr;

// A handler that faults itself: it must end the process, not loop.
void FaultInHandler(int, siginfo_t*, void*) {
  *reinterpret_cast<volatile char*>(read_only_page) = 1;
}

void Install(void (*fn)(int, siginfo_t*, void*)) {
  struct sigaction sa = {};
  sa.sa_sigaction = fn;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, nullptr);
}

void InstallPlain(void (*fn)(int)) {
  struct sigaction sa = {};
  sa.sa_handler = fn;
  sigaction(SIGSEGV, &sa, nullptr);
}

// A protected pool with one live block; creating it installs pmalloc's handler.
char* LockedBlock() {
  pmalloc_pool* pool = pmalloc_create_pool("helper", 0, 0, PMALLOC_POOL_MANUAL);
  char* p = static_cast<char*>(pmalloc(pool, 32));
  if (p == nullptr || pmalloc_protect_pool(pool) != 0) abort();
  return p;
}

char* ReadOnlyPage() {
  void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) abort();
  return static_cast<char*>(p);
}

__attribute__((noinline)) void HelperScribble(char* p) {
  *reinterpret_cast<volatile char*>(p) = 1;
  asm volatile("" ::: "memory");
}

#pragma GCC diagnostic ignored "-Winfinite-recursion"
__attribute__((noinline)) int Recurse(int depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  return Recurse(depth + 1) + frame[0];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const char* mode = argv[1];
  read_only_page = ReadOnlyPage();
  if (strcmp(mode, "pool-prev-siginfo") == 0) {
    Install(ExitOnSiginfo);
    HelperScribble(LockedBlock());
  } else if (strcmp(mode, "nonpool-prev-siginfo") == 0) {
    Install(ExitOnSiginfo);
    LockedBlock();
    HelperScribble(read_only_page);
  } else if (strcmp(mode, "nonpool-prev-plain") == 0) {
    InstallPlain(ExitOnPlain);
    LockedBlock();
    HelperScribble(read_only_page);
  } else if (strcmp(mode, "nonpool-default") == 0) {
    LockedBlock();
    HelperScribble(read_only_page);
  } else if (strcmp(mode, "nonpool-ignored") == 0) {
    InstallPlain(SIG_IGN);
    LockedBlock();
    HelperScribble(read_only_page);
  } else if (strcmp(mode, "pool-after") == 0) {
    char* p = LockedBlock();
    Install(ExitAfterPmalloc);
    HelperScribble(p);
  } else if (strcmp(mode, "null-after") == 0) {
    LockedBlock();
    Install(ExitAfterPmalloc);
    HelperScribble(nullptr);
  } else if (strcmp(mode, "pool-after-signal") == 0) {
    char* p = LockedBlock();
    signal(SIGSEGV, ExitOnPlain);
    HelperScribble(p);
  } else if (strcmp(mode, "null-after-signal") == 0) {
    LockedBlock();
    signal(SIGSEGV, ExitOnPlain);
    HelperScribble(nullptr);
  } else if (strcmp(mode, "query-after") == 0) {
    // sigaction reports the program's own handlers back: the one before, then its own.
    InstallPlain(ExitOnPlain);
    LockedBlock();
    struct sigaction old = {};
    sigaction(SIGSEGV, nullptr, &old);
    if (old.sa_handler != ExitOnPlain) return 3;
    struct sigaction sa = {};
    sa.sa_sigaction = ExitAfterPmalloc;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &old);
    if (old.sa_handler != ExitOnPlain) return 4;
    sigaction(SIGSEGV, nullptr, &old);
    if ((old.sa_flags & SA_SIGINFO) == 0 || old.sa_sigaction != ExitAfterPmalloc) return 5;
    if (reinterpret_cast<void*>(signal(SIGSEGV, SIG_DFL)) !=
        reinterpret_cast<void*>(ExitAfterPmalloc))
      return 6;
    sigaction(SIGSEGV, nullptr, &old);
    if (old.sa_handler != SIG_DFL) return 7;
    return 45;
  } else if (strcmp(mode, "pool-after-default") == 0) {
    // The program resets SIGSEGV to the default: a pool write is still reported, then kills.
    char* p = LockedBlock();
    signal(SIGSEGV, SIG_DFL);
    HelperScribble(p);
  } else if (strcmp(mode, "pool-prev-faults") == 0) {
    Install(FaultInHandler);
    HelperScribble(LockedBlock());
  } else if (strcmp(mode, "raise") == 0) {
    LockedBlock();
    raise(SIGSEGV);
  } else if (strcmp(mode, "raise-prev-plain") == 0) {
    InstallPlain(ExitOnPlain);
    LockedBlock();
    raise(SIGSEGV);
  } else if (strcmp(mode, "stack-overflow") == 0) {
    LockedBlock();
    return Recurse(0);
  } else if (strcmp(mode, "pool-small-altstack") == 0) {
    // Too small for the symbolizer (it needs ~5 KiB above the signal frame), enough for
    // the rest: the kernel's frame plus 4 KiB. The frame is measured (SignalFrameBytes):
    // AT_MINSIGSTKSZ is only its upper bound (~12 KiB where AMX exists, while a process
    // that never asked for AMX gets ~3.5 KiB frames). A PROT_NONE page below turns an
    // overflow into a fault instead of corruption.
    constexpr size_t kPage = 4096;
    const size_t alt = SignalFrameBytes() + 4096;
    const size_t mapped = (alt + kPage - 1) / kPage * kPage;
    char* m = static_cast<char*>(
        mmap(nullptr, kPage + mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (m == MAP_FAILED || mprotect(m, kPage, PROT_NONE) != 0) return 3;
    stack_t ss = {};
    ss.ss_sp = m + kPage + mapped - alt;
    ss.ss_size = alt;
    if (sigaltstack(&ss, nullptr) != 0) return 3;
    HelperScribble(LockedBlock());
  } else if (strcmp(mode, "stack-overflow-altstack") == 0) {
    static char alt[64 << 10];
    stack_t ss = {};
    ss.ss_sp = alt;
    ss.ss_size = sizeof(alt);
    sigaltstack(&ss, nullptr);
    LockedBlock();
    return Recurse(0);
  } else {
    return 2;
  }
  return 0;  // not reached when the fault works
}
