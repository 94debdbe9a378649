// PMALLOC_CONF=tag:startup (docs/rules.md): every allocation of any thread from this
// library's constructor until the lockdown trigger goes to the default lockable pool,
// except the sites the rules file (rules:PATH, core/rules.h) excludes.
//
// How: the constructor saves jemalloc's entries of the table `je` (jemalloc_entry.h) and
// puts tagging functions in their place (malloc, calloc, the operator new forms); the
// lockdown hook (Registry::SetBeforeLockdown) puts jemalloc's back before anything is
// protected. route.h's inline paths are therefore the same instructions with or without
// tagging, and after the trigger the untagged path is exactly what it is without this file.
//
// A tagging function captures the allocation's site (core/sites.h: the unwinder, a few
// microseconds), interns it (the rules decide once per site: SiteStats::tagged), and
// allocates from the pool, remembering block -> site. Allocations made while a site is
// being captured (the unwinder, the module table's realpath) go to jemalloc: a thread-local
// flag. A site that cannot be captured or interned, or a pool allocation that fails, falls
// back to jemalloc: tagging never makes an allocation fail.
//
// Not tagged: realloc of a jemalloc block (it stays in jemalloc, as in a scope), alignments
// above 16 (posix_memalign, aligned_alloc, valloc go to mallocx directly), and allocations of
// a thread inside an explicit scope (the scope's pool wins: route.h checks it first).
#include <errno.h>

#include <atomic>
#include <new>

#include "absl/base/attributes.h"
#include "core/config.h"
#include "core/log.h"
#include "core/modules.h"
#include "core/pool.h"
#include "core/registry.h"
#include "core/rules.h"
#include "core/sites.h"
#include "preload/jemalloc_entry.h"

namespace pmalloc::internal::route {
namespace {

// jemalloc's entries, as they were when tagging began.
struct Saved {
  void* (*malloc)(size_t) noexcept;
  void* (*calloc)(size_t, size_t) noexcept;
  void* (*new_)(size_t);
  void* (*new_nothrow)(size_t, const std::nothrow_t&) noexcept;
  void* (*new_aligned)(size_t, std::align_val_t);
  void* (*new_aligned_nothrow)(size_t, std::align_val_t, const std::nothrow_t&) noexcept;
};
ABSL_CONST_INIT Saved saved = {};
ABSL_CONST_INIT Pool* startup_pool = nullptr;
ABSL_CONST_INIT std::atomic<bool> tagging{false};
// Set while this thread captures a site: its allocations then go to jemalloc.
__thread bool capturing __attribute__((tls_model("initial-exec"))) = false;

// The pool for an allocation of `size` bytes at the caller's site, or nullptr (untagged).
Pool* Decide(size_t size, SiteId* id) {
  if (capturing) return nullptr;
  capturing = true;
  Site site;
  const SiteId sid = CaptureSite(&site) ? InternSite(site) : 0;
  capturing = false;
  SiteStats* stats = StatsOf(sid);
  if (stats == nullptr) return nullptr;
  stats->allocs.fetch_add(1, std::memory_order_relaxed);
  stats->bytes.fetch_add(size, std::memory_order_relaxed);
  if (stats->tagged.load(std::memory_order_relaxed) == 0) return nullptr;
  *id = sid;
  return startup_pool;
}

void* FromPool(size_t size, size_t align, bool zero) {
  SiteId id = 0;
  Pool* pool = Decide(size, &id);
  if (pool == nullptr) return nullptr;
  const int saved_errno = errno;
  void* p = pool->Allocate(size, align, zero);
  if (p == nullptr) {
    errno = saved_errno;  // the caller falls back to jemalloc
    return nullptr;
  }
  RecordBlockSite(p, id);
  return p;
}

void* TagMalloc(size_t size) noexcept {
  if (void* p = FromPool(size, 0, false)) return p;
  return saved.malloc(size);
}

void* TagCalloc(size_t n, size_t size) noexcept {
  size_t bytes;
  if (!__builtin_mul_overflow(n, size, &bytes)) {
    if (void* p = FromPool(bytes, 0, true)) return p;
  }
  return saved.calloc(n, size);  // also the overflow's ENOMEM
}

void* TagNew(size_t size) {
  if (void* p = FromPool(size, 0, false)) return p;
  return saved.new_(size);
}

void* TagNewNothrow(size_t size, const std::nothrow_t& nt) noexcept {
  if (void* p = FromPool(size, 0, false)) return p;
  return saved.new_nothrow(size, nt);
}

void* TagNewAligned(size_t size, std::align_val_t align) {
  if (void* p = FromPool(size, static_cast<size_t>(align), false)) return p;
  return saved.new_aligned(size, align);
}

void* TagNewAlignedNothrow(size_t size, std::align_val_t align, const std::nothrow_t& nt) noexcept {
  if (void* p = FromPool(size, static_cast<size_t>(align), false)) return p;
  return saved.new_aligned_nothrow(size, align, nt);
}

// The lockdown hook: jemalloc's entries back, before anything is protected (and before the
// table itself may be made read-only).
void EndStartupTagging() {
  if (!tagging.exchange(false, std::memory_order_acq_rel)) return;
  RoWrite w;  // REQUIRES: before LockRoState (the lockdown hook runs first)
  if (!w.ok()) return;
  JeFns* to = w.At(&je);
  to->malloc.store(saved.malloc, std::memory_order_relaxed);
  to->calloc.store(saved.calloc, std::memory_order_relaxed);
  to->new_.store(saved.new_, std::memory_order_relaxed);
  to->new_nothrow.store(saved.new_nothrow, std::memory_order_relaxed);
  to->new_aligned.store(saved.new_aligned, std::memory_order_relaxed);
  to->new_aligned_nothrow.store(saved.new_aligned_nothrow, std::memory_order_release);
}

void AddConfiguredWrappers(const char* names) {
  for (const char* p = names; *p != '\0';) {
    const char* plus = p;
    while (*plus != '\0' && *plus != '+') ++plus;
    if (plus != p && !AddWrapper(p, static_cast<size_t>(plus - p))) {
      LogLine line;
      line.Str("pmalloc: PMALLOC_CONF: wrappers: too many or too long a name, the rest ignored");
      line.Emit();
      return;
    }
    p = *plus == '+' ? plus + 1 : plus;
  }
}

// Right after jemalloc's entries are resolved (constructor 101), before the other
// constructors of this library and before any of the program's.
__attribute__((constructor(102))) void BeginStartupTagging() {
  const Config& c = GetConfig();
  if (c.tag != TagMode::kStartup) {
    if (c.rules.path[0] != '\0') {
      LogLine line;
      line.Str("pmalloc: PMALLOC_CONF: rules:").Str(c.rules.path);
      line.Str(" given without tag:startup: nothing is tagged by rules");
      line.Emit();
    }
    return;
  }
  if (c.disable) {  // pools are plain jemalloc memory: nothing to tag for
    LogLine line;
    line.Str("pmalloc: PMALLOC_CONF: tag:startup ignored under disable:true");
    line.Emit();
    return;
  }
  InitModules();
  AddConfiguredWrappers(c.wrappers.names);
  if (c.rules.path[0] != '\0') LoadRules(c.rules.path, c.learn != LearnMode::kOff);
  SetSiteClassifier(RulesTagSite);  // also without a file: the loader's sites stay untagged
  startup_pool = Registry::DefaultPool();
  if (startup_pool == nullptr) {
    LogLine line;
    line.Str("pmalloc: tag:startup: cannot create the default pool (errno ").Dec(errno);
    line.Str("): nothing is tagged");
    line.Emit();
    return;
  }
  const LockdownTrigger& t = c.lockdown;
  if (!t.main && t.signal == 0 && t.calls == 0 && !t.serve && t.after_ns == 0) {
    LogLine line;
    line.Str("pmalloc: tag:startup: no lockdown trigger configured: every allocation is ");
    line.Str("tagged until the program calls pmalloc_lockdown()");
    line.Emit();
  }
  saved.malloc = je.malloc.load(std::memory_order_relaxed);
  saved.calloc = je.calloc.load(std::memory_order_relaxed);
  saved.new_ = je.new_.load(std::memory_order_relaxed);
  saved.new_nothrow = je.new_nothrow.load(std::memory_order_relaxed);
  saved.new_aligned = je.new_aligned.load(std::memory_order_relaxed);
  saved.new_aligned_nothrow = je.new_aligned_nothrow.load(std::memory_order_relaxed);
  Registry::SetBeforeLockdown(EndStartupTagging);
  tagging.store(true, std::memory_order_release);
  {
    RoWrite w;
    if (!w.ok()) return;
    JeFns* to = w.At(&je);
    to->malloc.store(TagMalloc, std::memory_order_relaxed);
    to->calloc.store(TagCalloc, std::memory_order_relaxed);
    to->new_.store(TagNew, std::memory_order_relaxed);
    to->new_nothrow.store(TagNewNothrow, std::memory_order_relaxed);
    to->new_aligned.store(TagNewAligned, std::memory_order_relaxed);
    to->new_aligned_nothrow.store(TagNewAlignedNothrow, std::memory_order_release);
  }
  // A lockdown that already ran (a constructor of a library loaded before us cannot call
  // pmalloc_lockdown, but be safe) ends tagging at once.
  if (Registry::LockedDown()) EndStartupTagging();
}

}  // namespace
}  // namespace pmalloc::internal::route
