#include "core/learn.h"

#include <errno.h>
#include <ucontext.h>

#include "core/config.h"
#include "core/fault_report.h"
#include "core/platform.h"
#include "core/pool.h"
#include "core/registry.h"
#include "core/window.h"
#include "core/write_observer.h"

namespace pmalloc::internal {
namespace {

// One single step in progress on this thread: the faulting instruction and the pages it
// was allowed to write. A stack, because a signal delivered before the stepped instruction
// runs may itself write a locked pool (its handler runs with the trap flag clear; the
// outer step resumes when it returns).
struct Step {
  static constexpr int kMaxPages = 4;  // a store spans two pages; rep movs a few more
  uintptr_t pc;
  uintptr_t pages[kMaxPages];
  int npages;
};
constexpr int kMaxDepth = 8;
// Initial-exec: no allocation or lock on first access, as a signal handler needs.
__attribute__((tls_model("initial-exec"))) thread_local Step steps[kMaxDepth];
__attribute__((tls_model("initial-exec"))) thread_local int depth = 0;

constexpr uintptr_t kTrapFlag = 0x100;  // x86 EFLAGS.TF

bool LearnOn() { return GetConfig().learn != LearnMode::kOff; }

uintptr_t PageOf(uintptr_t a) { return a & ~(platform::PageSize() - 1); }

// True when `addr` lies in memory learn mode covers: an area of a pool that lockdown
// protects (not MANUAL) that is not sealed, or an unsealed lockdown range. `locked` is set
// when the memory is protected now (the kernel cannot write it).
bool Covered(const void* addr, bool* locked) {
  if (Window::Contains(addr)) {
    const Area* a = Window::AreaOf(addr);
    if (a == nullptr) return false;
    *locked = !a->writable.load(std::memory_order_acquire);
    return (a->pool->flags() & PMALLOC_POOL_MANUAL) == 0 &&
           !a->sealed.load(std::memory_order_acquire);
  }
  Registry::RangeInfo r;
  if (!Registry::RangeOf(addr, &r)) return false;
  *locked = Registry::LockedDown();
  return !r.sealed;
}

// Any protected pool area or lockdown range (MANUAL and sealed pools included): the memory
// a kernel write fails on because of pmalloc.
bool Locked(const void* addr) {
  if (Window::Contains(addr)) {
    const Area* a = Window::AreaOf(addr);
    return a != nullptr && !a->writable.load(std::memory_order_acquire);
  }
  Registry::RangeInfo r;
  return Registry::LockedDown() && Registry::RangeOf(addr, &r);
}

#if defined(__x86_64__)
bool IsWrite(const ucontext_t* uc) {
  constexpr greg_t kPageFault = 14;
  return uc->uc_mcontext.gregs[REG_TRAPNO] == kPageFault &&
         (uc->uc_mcontext.gregs[REG_ERR] & 0x2) != 0;
}
#endif

}  // namespace

bool LearnFromWriteFault(siginfo_t* info, void* ucontext) {
#if defined(__x86_64__)
  if (ucontext == nullptr || info->si_code != SEGV_ACCERR || !LearnOn()) return false;
  auto* uc = static_cast<ucontext_t*>(ucontext);
  if (!IsWrite(uc)) return false;
  bool locked = false;
  if (!Covered(info->si_addr, &locked)) return false;
  const uintptr_t pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  const uintptr_t page = PageOf(reinterpret_cast<uintptr_t>(info->si_addr));
  // The same instruction faulting again before its trap: it needs a second page (a store
  // across a page boundary), or another thread's trap re-protected our page meanwhile. One
  // write, recorded once per page.
  Step* step = depth > 0 && steps[depth - 1].pc == pc ? &steps[depth - 1] : nullptr;
  bool known_page = false;
  if (step != nullptr) {
    for (int i = 0; i < step->npages; ++i) known_page = known_page || step->pages[i] == page;
    if (!known_page) {
      if (step->npages == Step::kMaxPages) return false;
      step->pages[step->npages++] = page;
    }
  } else {
    if (depth == kMaxDepth) return false;  // reported and handled as enforcing mode
    step = &steps[depth++];
    step->pc = pc;
    step->pages[0] = page;
    step->npages = 1;
  }
  if (!platform::ProtectReadWrite(reinterpret_cast<void*>(page), platform::PageSize())) {
    if (!known_page) {
      if (--step->npages == 0) --depth;
    }
    return false;
  }
  if (!known_page) NotifyWrite(info->si_addr, pc, "store");
  uc->uc_mcontext.gregs[REG_EFL] |= kTrapFlag;
  return true;
#else
  (void)info;
  (void)ucontext;
  return false;
#endif
}

bool LearnFromTrap(siginfo_t* info, void* ucontext) {
#if defined(__x86_64__)
  if (ucontext == nullptr || depth == 0) return false;
  auto* uc = static_cast<ucontext_t*>(ucontext);
  // Our single step: TRAP_TRACE, or any kernel trap taken with the trap flag we set still
  // set in the context. Under a hypervisor the debug status register's single-step bit is
  // sometimes lost and the kernel then says TRAP_BRKPT (measured: redis-server under learn
  // mode died of SIGTRAP, si_code 1, EFLAGS 0x346, about once in ten loaded runs). While a
  // step is pending only the one stepped store runs with the flag set, so no breakpoint of
  // the program's can arrive this way.
  const bool traced = info->si_code == TRAP_TRACE ||
                      (info->si_code > 0 && (uc->uc_mcontext.gregs[REG_EFL] & kTrapFlag) != 0);
  if (!traced) return false;
  Step& step = steps[depth - 1];
  // A rep-prefixed string instruction traps after every iteration with the pc unchanged:
  // keep stepping until it is done.
  if (static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]) == step.pc) return true;
  for (int i = 0; i < step.npages; ++i) {
    // Failure leaves the page writable: later writes to it go unrecorded (nothing else is
    // lost; learn mode does not protect).
    (void)platform::ProtectReadOnly(reinterpret_cast<void*>(step.pages[i]), platform::PageSize());
  }
  --depth;
  uc->uc_mcontext.gregs[REG_EFL] &= ~static_cast<greg_t>(kTrapFlag);
  return true;
#else
  (void)info;
  (void)ucontext;
  return false;
#endif
}

bool OnKernelWriteFault(const char* via, const UserBuffer* bufs, size_t n, uintptr_t caller,
                        UnlockedPages* out) {
  const int saved = errno;
  const size_t page = platform::PageSize();
  out->runs = 0;
  // The first locked page of any buffer decides; learn mode then unlocks every covered
  // locked page of every buffer (a readv may span several allocations).
  const void* hit = nullptr;
  for (size_t b = 0; b < n && hit == nullptr; ++b) {
    if (bufs[b].addr == nullptr || bufs[b].len == 0) continue;
    const uintptr_t start = reinterpret_cast<uintptr_t>(bufs[b].addr);
    const uintptr_t end = start + bufs[b].len;
    for (uintptr_t p = PageOf(start); p < end && hit == nullptr; p += page) {
      const uintptr_t probe = p < start ? start : p;
      if (Locked(reinterpret_cast<void*>(probe))) hit = reinterpret_cast<void*>(probe);
    }
  }
  errno = saved;
  if (hit == nullptr) return false;
  bool locked = false;
  if (!LearnOn() || !Covered(hit, &locked)) DieOfKernelWrite(via, hit, caller);
  NotifyWrite(hit, caller, via);
  for (size_t b = 0; b < n; ++b) {
    if (bufs[b].addr == nullptr || bufs[b].len == 0) continue;
    const uintptr_t start = reinterpret_cast<uintptr_t>(bufs[b].addr);
    const uintptr_t end = start + bufs[b].len;
    for (uintptr_t p = PageOf(start); p < end; p += page) {
      const uintptr_t probe = p < start ? start : p;
      locked = false;
      if (!Covered(reinterpret_cast<void*>(probe), &locked) || !locked) continue;
      const int r = out->runs;
      if (r > 0 && out->start[r - 1] + out->len[r - 1] == p) {
        out->len[r - 1] += page;
      } else if (r < UnlockedPages::kMaxRuns) {
        out->start[r] = p;
        out->len[r] = page;
        ++out->runs;
      } else {
        break;  // the retry fails again with EFAULT for the rest
      }
    }
  }
  for (int r = 0; r < out->runs; ++r) {
    if (!platform::ProtectReadWrite(reinterpret_cast<void*>(out->start[r]), out->len[r])) {
      out->len[r] = 0;
    }
  }
  errno = saved;
  return true;
}

void Relock(const UnlockedPages& pages) {
  const int saved = errno;
  for (int r = 0; r < pages.runs; ++r) {
    if (pages.len[r] != 0) {
      (void)platform::ProtectReadOnly(reinterpret_cast<void*>(pages.start[r]), pages.len[r]);
    }
  }
  errno = saved;
}

}  // namespace pmalloc::internal
