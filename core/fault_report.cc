#include "core/fault_report.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/call_once.h"
#include "absl/debugging/symbolize.h"
#include "core/config.h"
#include "core/learn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/registry.h"
#include "core/ro_state.h"
#include "core/sites.h"
#include "core/window.h"

namespace pmalloc::internal {

namespace {

// SIGSEGV/SIGBUS handlers installed once per process.
ABSL_CONST_INIT absl::once_flag install_once;

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);

// The action pmalloc chains to for one signal: the one in place before ours, then whatever
// the program installs through the face (SetProgramAction). A seqlock: writers (rare: the
// program's sigaction) serialise in RoWrite with every signal blocked; the handler copies
// `act` and retries if `seq` moved. After lockdown a write replaces the whole page, which
// readers see entirely old or entirely new.
struct ProgramAction {
  std::atomic<bool> kept{false};  // ours is installed and stays first
  std::atomic<uint32_t> seq{0};
  struct sigaction act = {};
};
// What the handler trusts: read-only after lockdown (core/ro_state.h).
struct Chained {
  ProgramAction segv;
  ProgramAction bus;
  ProgramAction trap;
  // The report signal (SIGUSR1 under learn mode, core/learn_report.h) and what it calls.
  ProgramAction report;
  std::atomic<int> report_signal{0};
  std::atomic<void (*)()> report_hook{nullptr};
  std::atomic<SigactionFn> real_sigaction{nullptr};
};
ABSL_CONST_INIT PMALLOC_RO_STATE RoSlot<Chained> chained;
// The last reported fault: a previous handler that returns without curing the fault makes
// the instruction fault again forever; it gets one report, not one per iteration.
ABSL_CONST_INIT std::atomic<uintptr_t> last_pc{0};
ABSL_CONST_INIT std::atomic<uintptr_t> last_addr{0};

void OnFault(int sig, siginfo_t* info, void* ucontext);
void OnTrap(int sig, siginfo_t* info, void* ucontext);
void OnReport(int sig, siginfo_t* info, void* ucontext);

ProgramAction* PrevFor(int sig) {
  Chained& c = chained.v;
  if (sig != 0 && sig == c.report_signal.load(std::memory_order_acquire)) return &c.report;
  switch (sig) {
    case SIGSEGV:
      return &c.segv;
    case SIGBUS:
      return &c.bus;
    case SIGTRAP:
      return &c.trap;
    default:
      return nullptr;
  }
}

struct sigaction ReadAction(ProgramAction* a) {
  struct sigaction copy;
  while (true) {
    const uint32_t before = a->seq.load(std::memory_order_acquire);
    if ((before & 1) != 0) continue;
    copy = a->act;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (a->seq.load(std::memory_order_relaxed) == before) return copy;
  }
}

// 0, or -1 with errno (EPERM: sealed by lockdown; ENOMEM) when `act` could not be recorded.
int WriteAction(ProgramAction* a, const struct sigaction* act, struct sigaction* old) {
  RoWrite w;
  if (old != nullptr) *old = a->act;
  if (act == nullptr) return 0;
  if (!w.ok()) return -1;
  ProgramAction* to = w.At(a);
  to->seq.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  to->act = *act;
  to->seq.fetch_add(1, std::memory_order_release);
  return w.Commit() ? 0 : -1;
}

bool IsOurs(const struct sigaction& a) {
  return (a.sa_flags & SA_SIGINFO) != 0 &&
         (a.sa_sigaction == OnFault || a.sa_sigaction == OnTrap || a.sa_sigaction == OnReport);
}

// Resolved early, so that the handler never calls dlsym.
__attribute__((constructor)) void ResolveSigaction() {
  struct sigaction ignored;
  RealSigaction(SIGSEGV, nullptr, &ignored);
}

// si_code > 0: raised by the kernel for the instruction at the PC (SEGV_*, BUS_*,
// SI_KERNEL); returning re-executes it. <= 0: sent by kill/raise/sigqueue/tgkill.
bool FromKernel(const siginfo_t* info) { return info != nullptr && info->si_code > 0; }

uintptr_t PcOf(const void* ucontext) {
  if (ucontext == nullptr) return 0;
  const auto* uc = static_cast<const ucontext_t*>(ucontext);
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  (void)uc;
  return 0;
#endif
}

// "write to ", "read of ", ... from the page-fault error code where the CPU gives one.
const char* AccessOf(const void* ucontext) {
#if defined(__x86_64__)
  if (ucontext != nullptr) {
    const auto* uc = static_cast<const ucontext_t*>(ucontext);
    constexpr greg_t kPageFault = 14;
    if (uc->uc_mcontext.gregs[REG_TRAPNO] == kPageFault) {
      const greg_t err = uc->uc_mcontext.gregs[REG_ERR];
      if ((err & 0x10) != 0) return "execute of ";
      return (err & 0x2) != 0 ? "write to " : "read of ";
    }
  }
#else
  (void)ucontext;
#endif
  return "access to ";
}

// The caller of a leaf function that faulted, e.g. the code that called memcpy or memset
// into a protected pool (the faulting instruction itself is then inside libc). x86-64 only:
// in a leaf function that pushed nothing, [sp] is the return address. It is believed only
// when it symbolizes (so it lies in a mapped object's text) and the bytes before it encode
// a call (e8 rel32, or ff /2 with 0-5 bytes of operand). Fills `symbol`; 0 when unknown.
uintptr_t CallerOf(const void* ucontext, char* symbol, int symbol_size) {
#if defined(__x86_64__)
  if (ucontext == nullptr) return 0;
  const auto* uc = static_cast<const ucontext_t*>(ucontext);
  const auto* sp = reinterpret_cast<const uintptr_t*>(uc->uc_mcontext.gregs[REG_RSP]);
  if (sp == nullptr || (reinterpret_cast<uintptr_t>(sp) & 7) != 0) return 0;
  const uintptr_t ret = *sp;
  if (ret < 4096 || !absl::Symbolize(reinterpret_cast<const void*>(ret - 1), symbol, symbol_size)) {
    return 0;
  }
  const auto* code = reinterpret_cast<const unsigned char*>(ret);
  if (code[-5] == 0xe8) return ret;
  for (int len = 2; len <= 7; ++len) {  // ff /2: call through register or memory
    if (code[-len] == 0xff && (code[-len + 1] & 0x38) == 0x10) return ret;
  }
#else
  (void)ucontext;
  (void)symbol;
  (void)symbol_size;
#endif
  return 0;
}

// The area whose trailing guard gap contains `addr` (see Window::NewArea: an area's span is
// its size rounded up to a granule plus one granule), or nullptr. Probes downwards page by
// page, at most two granules: lock-free table loads only.
const Area* AreaBefore(uintptr_t addr) {
  constexpr uintptr_t kStep = 4096;  // divides every page size
  const uintptr_t window = Window::base();
  for (uintptr_t q = (addr & ~(kStep - 1)) - kStep; q >= window && addr - q <= 2 * kGranule;
       q -= kStep) {
    const Area* a = Window::AreaOf(reinterpret_cast<void*>(q));
    if (a == nullptr) continue;
    return (addr >= a->base + a->size && addr < a->base + a->span) ? a : nullptr;
  }
  return nullptr;
}

// Symbolizing (absl reads /proc/self/maps and ELF sections into stack buffers) needs about
// 3.3 KiB of stack beyond this point, the rest of the report well under 1 KiB. Measured on
// x86-64 with alternate stacks above a PROT_NONE page: a 6 KiB stack (the kernel's signal
// frame takes ~1.8 KiB of it) still symbolized, 5 KiB overflowed. On an alternate stack
// with less room than this margin, report without symbols rather than overflow it.
constexpr uintptr_t kSymbolizeStack = 5 << 10;

bool RoomToSymbolize() {
  stack_t ss;
  if (sigaltstack(nullptr, &ss) != 0 || (ss.ss_flags & SS_ONSTACK) == 0) return true;
  const char here = 0;
  const uintptr_t sp = reinterpret_cast<uintptr_t>(&here);
  return sp - reinterpret_cast<uintptr_t>(ss.ss_sp) > kSymbolizeStack;
}

// "protected pool 'p' at 0x... (allocation 0x...+8, 48 bytes, live)" and the other forms:
// what lies at `fault` (in the window, or in the registered range `range`).
void DescribeTarget(LogLine& line, void* fault, bool in_window, const Registry::RangeInfo& range) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(fault);
  if (!in_window) {
    // A protected static (__ro_after_init) or other registered range: its state and what
    // registered it. (absl::Symbolize names functions only, and dladdr is not
    // async-signal-safe, so the variable itself is not named.)
    line.Str(range.sealed ? "sealed" : Registry::LockedDown() ? "protected" : "writable");
    line.Str(" static range of '").Str(range.name == nullptr ? "?" : range.name).Str("' at ");
    line.Hex(addr).Str(" (offset ").Dec(addr - range.start).Str(" of ").Hex(range.start);
    line.Str(", ").Dec(range.len).Str(" bytes)");
  } else if (const Area* a = Window::AreaOf(fault)) {
    const char* state = a->sealed.load(std::memory_order_relaxed)      ? "sealed"
                        : !a->writable.load(std::memory_order_relaxed) ? "protected"
                                                                       : "writable";
    line.Str(state).Str(" pool '").Str(a->pool->name()).Str("' at ").Hex(addr);
    uintptr_t start = 0;
    size_t size = 0;
    bool live = false;
    if (Pool::FindBlock(fault, &start, &size, &live)) {
      line.Str(" (allocation ").Hex(start).Str("+").Dec(addr - start).Str(", ").Dec(size);
      line.Str(live ? " bytes, live)" : " bytes, free)");
    } else {
      line.Str(" (never allocated, offset ").Dec(addr - a->base).Str(" of area ");
      line.Hex(a->base).Str(", ").Dec(a->size).Str(" bytes)");
    }
  } else if (const Area* g = AreaBefore(addr)) {
    line.Str("guard gap after pool '").Str(g->pool->name()).Str("' at ").Hex(addr);
    line.Str(" (").Dec(addr - (g->base + g->size)).Str(" bytes past the end of area ");
    line.Hex(g->base).Str(", ").Dec(g->size).Str(" bytes)");
  } else {
    line.Str("reserved pool window at ").Hex(addr).Str(" (no pool: destroyed or never used)");
  }
}

// For a rule-tagged block (tag:startup): where it was allocated, by which thread the write
// came, the pool's state, the rules line that would leave that site untagged, and one
// machine-readable SUMMARY line (docs/fault-reports.md). `kind` is "write-to-locked" or
// "kernel-write-to-locked", `via` the system call (or nullptr), `pc` the faulting
// instruction or the caller of the system call. Nothing for other blocks.
// Out of line: its buffers take stack only when there is a site to report (alternate
// stacks are small).
__attribute__((noinline)) void ReportSiteOf(const char* kind, const char* via, const void* fault,
                                            uintptr_t pc, bool symbolize, const Area* a,
                                            uintptr_t start, size_t size, SiteId id,
                                            const Site* site) {
  char where[192];
  FormatSite(*site, where, sizeof(where));
  char symbols[320] = "?";
  if (symbolize) FormatSymbols(*site, symbols, sizeof(symbols));
  const auto tid = static_cast<uint64_t>(syscall(SYS_gettid));
  {
    LogLine line;
    line.Str("pmalloc:   allocated at ").Str(where).Str(" (").Str(symbols);
    line.Str(") while tag:startup tagged the start-up heap");
    line.Emit();
  }
  {
    const char* state = a->sealed.load(std::memory_order_relaxed)      ? "sealed"
                        : !a->writable.load(std::memory_order_relaxed) ? "protected"
                                                                       : "writable";
    LogLine line;
    line.Str("pmalloc:   thread ").Dec(tid).Str(" of pid ").Dec(static_cast<uint64_t>(getpid()));
    line.Str("; pool '").Str(a->pool->name()).Str("' area ").Hex(a->base).Str("+");
    line.Dec(a->size).Str(" ").Str(state);
    line.Str(Registry::LockedDown() ? ", after lockdown" : ", before lockdown");
    if (const SiteStats* st = StatsOf(id)) {
      line.Str("; this site made ").Dec(st->allocs.load(std::memory_order_relaxed));
      line.Str(" allocations, ").Dec(st->bytes.load(std::memory_order_relaxed)).Str(" bytes");
    }
    line.Emit();
  }
  {
    LogLine line;
    line.Str("pmalloc:   to leave this site writable, add this line to the rules file");
    const char* rules = GetConfig().rules.path;
    if (rules[0] != '\0') line.Str(" ").Str(rules);
    line.Str(":");
    line.Emit();
  }
  {
    LogLine line;
    line.Str("exclude ").Str(where).Str("  # ").Str(symbols);
    line.Emit();
  }
  LogLine line;
  line.Str("pmalloc: SUMMARY ").Str(kind);
  if (via != nullptr) line.Str(" via=").Str(via);
  line.Str(" pool=");
  for (const char* n = a->pool->name(); *n != '\0'; ++n) {
    const char c[2] = {*n == ' ' ? '_' : *n, '\0'};  // one token
    line.Str(c);
  }
  const uintptr_t addr = reinterpret_cast<uintptr_t>(fault);
  line.Str(" addr=").Hex(addr).Str(" block=").Hex(start).Str("+").Dec(addr - start);
  line.Str(" size=").Dec(size).Str(" site=");
  for (size_t i = 0; where[i] != '\0'; ++i) {
    const char c[2] = {where[i] == ' ' ? ',' : where[i], '\0'};
    line.Str(c);
  }
  line.Str(" pc=").Hex(pc).Str(" tid=").Dec(tid);
  line.Emit();
}

void ReportSite(const char* kind, const char* via, const void* fault, uintptr_t pc,
                bool symbolize) {
  uintptr_t start = 0;
  size_t size = 0;
  bool live = false;
  const Area* a = Window::AreaOf(fault);
  if (a == nullptr || !Pool::FindBlock(fault, &start, &size, &live)) return;
  const SiteId id = BlockSite(reinterpret_cast<const void*>(start));
  if (const Site* site = SiteById(id)) {
    ReportSiteOf(kind, via, fault, pc, symbolize, a, start, size, id, site);
  }
}

void Report(int sig, const siginfo_t* info, const void* ucontext) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const bool in_window = Window::Contains(info->si_addr);
  Registry::RangeInfo range;
  if (!in_window && !Registry::RangeOf(info->si_addr, &range)) return;  // not ours
  const uintptr_t pc = PcOf(ucontext);
  const bool same_pc = last_pc.exchange(pc, std::memory_order_relaxed) == pc;
  const bool same_addr = last_addr.exchange(addr, std::memory_order_relaxed) == addr;
  if (same_pc && same_addr) return;

  LogLine line;
  line.Str("pmalloc: ");
  if (sig == SIGBUS) line.Str("bus error on ");
  line.Str(AccessOf(ucontext));
  DescribeTarget(line, info->si_addr, in_window, range);
  line.Str(" by ");
  char symbol[256];
  const bool symbolize = RoomToSymbolize();
  if (pc != 0 && symbolize &&
      absl::Symbolize(reinterpret_cast<const void*>(pc), symbol, sizeof(symbol))) {
    line.Str(symbol);
  } else {
    line.Str("?");
  }
  line.Str(" [pc ").Hex(pc).Str("]");
  if (const uintptr_t ret = !symbolize ? 0 : CallerOf(ucontext, symbol, sizeof(symbol))) {
    line.Str(" called from ").Str(symbol).Str(" [").Hex(ret).Str("]");
  }
  line.Emit();
  if (in_window && sig == SIGSEGV) {
    ReportSite(AccessOf(ucontext)[0] == 'w' ? "write-to-locked" : "access-to-locked", nullptr,
               info->si_addr, pc, symbolize);
  }
}

struct sigaction DefaultAction() {
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  return dfl;
}

void SetDefault(int sig) {
  const struct sigaction dfl = DefaultAction();
  RealSigaction(sig, &dfl, nullptr);
}

// Hands the signal to the program's action (the one in place before ours, or installed
// after it through the face), as the kernel would have.
void Chain(int sig, siginfo_t* info, void* ucontext) {
  ProgramAction* slot = PrevFor(sig);
  const struct sigaction prev = ReadAction(slot);
  const bool siginfo = (prev.sa_flags & SA_SIGINFO) != 0;
  const bool is_default = !siginfo && prev.sa_handler == SIG_DFL;
  const bool is_ignore = !siginfo && prev.sa_handler == SIG_IGN;
  if ((siginfo && IsOurs(prev)) || is_default || (is_ignore && FromKernel(info))) {
    // Default action. The kernel cannot ignore a fault either: it forces SIG_DFL.
    SetDefault(sig);
    // A fault re-executes on return and dies; a sent signal must be sent again (it stays
    // pending while blocked here and is delivered when this handler returns), and so must
    // a trap (int3, single step: the PC is already past the instruction).
    if (!FromKernel(info) || sig == SIGTRAP) raise(sig);
    return;
  }
  if (is_ignore) return;
  // Run it with the mask and flags it asked for.
  sigset_t mask;
  if (ucontext != nullptr) {
    mask = static_cast<ucontext_t*>(ucontext)->uc_sigmask;
  } else {
    pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  }
  sigorset(&mask, &mask, &prev.sa_mask);
  if ((prev.sa_flags & SA_NODEFER) == 0) sigaddset(&mask, sig);
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  // SA_RESETHAND: the program's action becomes the default one; ours stays installed.
  if ((prev.sa_flags & SA_RESETHAND) != 0) {
    const struct sigaction dfl = DefaultAction();
    WriteAction(slot, &dfl, nullptr);
  }
  if (siginfo) {
    prev.sa_sigaction(sig, info, ucontext);
  } else {
    prev.sa_handler(sig);
  }
}

void OnFault(int sig, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  // Learn mode: a write to a locked pool is recorded and let through (core/learn.h).
  if (FromKernel(info) && sig == SIGSEGV && LearnFromWriteFault(info, ucontext)) {
    errno = saved_errno;
    return;
  }
  // SIGSEGV and SIGBUS stay blocked while this runs (sa_mask): a fault inside the report
  // itself is therefore fatal at once (the kernel forces the default action) instead of
  // recursing.
  if (FromKernel(info)) Report(sig, info, ucontext);  // says nothing outside pmalloc's memory
  errno = saved_errno;
  Chain(sig, info, ucontext);
  errno = saved_errno;
}

// Learn mode's single-step trap; any other SIGTRAP (breakpoints, the program's own) goes to
// the program's action.
void OnTrap(int sig, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  if (!LearnFromTrap(info, ucontext)) Chain(sig, info, ucontext);
  errno = saved_errno;
}

// The report signal: the report first, then the program's action, exactly as for a fault
// that is not pmalloc's (a default action terminates, as it would have).
void OnReport(int sig, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  if (void (*hook)() = chained.v.report_hook.load(std::memory_order_acquire)) hook();
  errno = saved_errno;
  Chain(sig, info, ucontext);
  errno = saved_errno;
}

// Our action for `sig`; for the report signal, with the program's SA_RESTART choice (an
// interrupted read() must return EINTR or restart as the program asked).
struct sigaction OursFor(void (*handler)(int, siginfo_t*, void*), int program_flags) {
  struct sigaction ours = {};
  ours.sa_sigaction = handler;
  // SA_ONSTACK: use the thread's alternate stack when it has one (stack overflows).
  ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
  ours.sa_flags |= handler == OnReport ? (program_flags & SA_RESTART) : SA_RESTART;
  sigemptyset(&ours.sa_mask);
  sigaddset(&ours.sa_mask, SIGSEGV);
  sigaddset(&ours.sa_mask, SIGBUS);
  sigaddset(&ours.sa_mask, SIGTRAP);
  if (handler == OnReport) {
    sigdelset(&ours.sa_mask, SIGSEGV);  // learn mode's single step must work in the report
    sigdelset(&ours.sa_mask, SIGTRAP);  // signal's own handler and in the program's
    sigdelset(&ours.sa_mask, SIGBUS);
  }
  return ours;
}

void InstallOne(int sig, void (*handler)(int, siginfo_t*, void*)) {
  ProgramAction* slot = PrevFor(sig);
  struct sigaction prev0;
  RealSigaction(sig, nullptr, &prev0);
  const struct sigaction ours = OursFor(handler, prev0.sa_flags);
  // Record the previous action before ours can run, then swap; if someone changed it in
  // between, keep what was really replaced.
  struct sigaction prev;
  RealSigaction(sig, nullptr, &prev);
  if (WriteAction(slot, &prev, nullptr) != 0) return;  // sealed: the kernel's action stays
  struct sigaction replaced;
  if (RealSigaction(sig, &ours, &replaced) != 0) return;
  if ((replaced.sa_flags & SA_SIGINFO) != (prev.sa_flags & SA_SIGINFO) ||
      reinterpret_cast<void*>(replaced.sa_handler) != reinterpret_cast<void*>(prev.sa_handler)) {
    WriteAction(slot, &replaced, nullptr);
  }
  {
    RoWrite w;
    if (w.ok()) w.At(slot)->kept.store(true, std::memory_order_release);
  }
  // A program's sigaction that ran between the swap and `kept` went to the kernel: take it
  // as the program's action and put ours back.
  struct sigaction now;
  if (RealSigaction(sig, nullptr, &now) == 0 && !IsOurs(now)) {
    WriteAction(slot, &now, nullptr);
    RealSigaction(sig, &ours, nullptr);
  }
}

}  // namespace

void InstallFaultHandler() {
  absl::call_once(install_once, [] {
    InstallOne(SIGSEGV, OnFault);
    InstallOne(SIGBUS, OnFault);
    if (GetConfig().learn != LearnMode::kOff) InstallOne(SIGTRAP, OnTrap);
  });
}

int RealSigaction(int sig, const struct sigaction* act, struct sigaction* old) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // No face in sanitizer builds, and the runtime's interceptor must see every handler.
  return sigaction(sig, act, old);
#else
  SigactionFn fn = chained.v.real_sigaction.load(std::memory_order_acquire);
  if (fn == nullptr) {
    fn = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
    if (fn == nullptr) {  // libc precedes libpmalloc in the lookup order
      if (void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD)) {
        fn = reinterpret_cast<SigactionFn>(dlsym(libc, "sigaction"));
      }
    }
    if (fn == nullptr) fn = sigaction;
    RoWrite w;
    if (w.ok()) w(&chained)->real_sigaction.store(fn, std::memory_order_release);
  }
  return fn(sig, act, old);
#endif
}

bool KeepsSignal(int sig) {
  const ProgramAction* slot = PrevFor(sig);
  return slot != nullptr && slot->kept.load(std::memory_order_acquire);
}

int SetProgramAction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (WriteAction(PrevFor(sig), act, old) != 0) return -1;
  if (act != nullptr && sig == chained.v.report_signal.load(std::memory_order_acquire)) {
    const struct sigaction ours = OursFor(OnReport, act->sa_flags);
    RealSigaction(sig, &ours, nullptr);
  }
  return 0;
}

void InstallReportSignal(int sig, void (*hook)()) {
  {
    RoWrite w;
    if (!w.ok()) return;
    Chained* c = w(&chained);
    c->report_hook.store(hook, std::memory_order_release);
    int none = 0;
    if (!c->report_signal.compare_exchange_strong(none, sig, std::memory_order_acq_rel)) return;
  }
  InstallOne(sig, OnReport);
}

void DieOfKernelWrite(const char* via, const void* addr, uintptr_t caller) {
  void* target = const_cast<void*>(addr);
  const bool in_window = Window::Contains(target);
  Registry::RangeInfo range = {};
  if (!in_window) (void)Registry::RangeOf(target, &range);
  LogLine line;
  line.Str("pmalloc: ").Str(via).Str("() failed with EFAULT: the kernel cannot write to ");
  DescribeTarget(line, target, in_window, range);
  line.Str(", called from ");
  char symbol[256];
  if (caller != 0 && RoomToSymbolize() &&
      absl::Symbolize(reinterpret_cast<const void*>(caller - 1), symbol, sizeof(symbol))) {
    line.Str(symbol);
  } else {
    line.Str("?");
  }
  line.Str(" [").Hex(caller).Str("]");
  line.Emit();
  if (in_window) ReportSite("kernel-write-to-locked", via, target, caller, RoomToSymbolize());
  // The course of a write fault: the program's SIGSEGV action (this handler chains to it),
  // else the default action. A program handler that returns does not save the process.
  sigset_t segv;
  sigemptyset(&segv);
  sigaddset(&segv, SIGSEGV);
  pthread_sigmask(SIG_UNBLOCK, &segv, nullptr);
  raise(SIGSEGV);
  SetDefault(SIGSEGV);
  raise(SIGSEGV);
  _exit(128 + SIGSEGV);  // not reached: SIGSEGV cannot be caught any more
}

}  // namespace pmalloc::internal
