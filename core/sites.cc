#include "core/sites.h"

#include <pthread.h>
#include <string.h>
#include <unwind.h>

#include "absl/base/attributes.h"
#include "absl/base/internal/spinlock.h"
#include "absl/base/thread_annotations.h"
#include "absl/debugging/symbolize.h"
#include "core/modules.h"
#include "core/platform.h"

namespace pmalloc::internal {
namespace {

using absl::base_internal::SpinLock;
using absl::base_internal::SpinLockHolder;

size_t PageRound(size_t n) {
  const size_t page = platform::PageSize();
  return (n + page - 1) & ~(page - 1);
}

// --- capture -------------------------------------------------------------------------
// Frames walked at most: pmalloc's own (3-4), wrappers, then kSiteFrames.
constexpr int kMaxWalk = 32;

struct Walk {
  Site* out;
  int walked;
  uintptr_t last_skipped;  // innermost-last wrapper frame, when nothing else is found
};

_Unwind_Reason_Code OnFrame(_Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<Walk*>(arg);
  const uintptr_t pc = _Unwind_GetIP(ctx);
  if (pc == 0 || ++w->walked > kMaxWalk) return _URC_END_OF_STACK;
  if (InPmalloc(pc)) return _URC_NO_REASON;
  if (w->out->depth == 0 && InWrapper(pc)) {
    w->last_skipped = pc;
    return _URC_NO_REASON;
  }
  // Wrappers are skipped only before the first frame kept: below it they are callers.
  w->out->pc[w->out->depth++] = pc;
  return w->out->depth == kSiteFrames ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// --- interning -----------------------------------------------------------------------
constexpr uint32_t kMaxSites = 1u << 16;
constexpr uint32_t kIndexSize = 1u << 17;  // open addressing, at most half full

struct SiteEntry {
  Site site;
  SiteStats stats;
};

struct SiteTable {
  std::atomic<uint32_t> index[kIndexSize];  // site ids, 0 = empty
  SiteEntry entries[kMaxSites + 1];         // by id; entries[0] unused
};

ABSL_CONST_INIT SpinLock intern_lock(absl::kConstInit, absl::base_internal::SCHEDULE_KERNEL_ONLY);
ABSL_CONST_INIT std::atomic<SiteTable*> site_table{nullptr};
ABSL_CONST_INIT std::atomic<uint32_t> site_count{0};
ABSL_CONST_INIT std::atomic<SiteClassifier> classifier{nullptr};

uint64_t HashSite(const Site& s) {
  uint64_t h = static_cast<uint64_t>(s.depth) * 0x9e3779b97f4a7c15u;
  for (int i = 0; i < s.depth; ++i) {
    h ^= s.pc[i];
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
  }
  return h;
}

bool SameSite(const Site& a, const Site& b) {
  if (a.depth != b.depth) return false;
  for (int i = 0; i < a.depth; ++i) {
    if (a.pc[i] != b.pc[i]) return false;
  }
  return true;
}

// The id of `s` in `t`, or 0 with *slot = the empty index slot where it would go.
uint32_t Probe(const SiteTable* t, const Site& s, uint32_t* slot) {
  for (uint32_t i = static_cast<uint32_t>(HashSite(s)) & (kIndexSize - 1);;
       i = (i + 1) & (kIndexSize - 1)) {
    const uint32_t id = t->index[i].load(std::memory_order_acquire);
    if (id == 0) {
      *slot = i;
      return 0;
    }
    if (SameSite(t->entries[id].site, s)) return id;
  }
}

// --- block -> site -------------------------------------------------------------------
// Generations of open-addressing tables, each twice the size of the one before; a new one
// is opened when the newest is half full, and records go to the newest. Keys are never
// removed (Forget zeroes the site in every generation), so a lock-free reader never sees a
// key move; an address recorded again after it was forgotten (the pool reuses freed blocks
// before lockdown) may have zeroed slots in older generations, and lookups return the
// newest non-zero one.
constexpr int kMaxGens = 20;
constexpr size_t kFirstGenSlots = size_t{1} << 15;
constexpr int kMaxProbe = 64;

struct BlockSlot {
  std::atomic<uintptr_t> key;
  std::atomic<uint32_t> site;
};

struct BlockGen {
  size_t mask;
  std::atomic<size_t> used;
  BlockSlot slots[1];  // mask + 1 of them
};

ABSL_CONST_INIT std::atomic<BlockGen*> gens[kMaxGens] = {};
ABSL_CONST_INIT std::atomic<int> gen_count{0};
ABSL_CONST_INIT std::atomic<bool> any_recorded{false};

size_t HashBlock(uintptr_t p) { return static_cast<size_t>((p >> 3) * 0x9e3779b97f4a7c15u >> 20); }

void PublishGen(int g) {
  int n = gen_count.load(std::memory_order_relaxed);
  while (n < g + 1 && !gen_count.compare_exchange_weak(n, g + 1, std::memory_order_release)) {
  }
}

BlockGen* NewGen(int g) {
  BlockGen* cur = gens[g].load(std::memory_order_acquire);
  if (cur != nullptr) {
    PublishGen(g);
    return cur;
  }
  const size_t slots = kFirstGenSlots << g;
  const size_t bytes = PageRound(sizeof(BlockGen) + (slots - 1) * sizeof(BlockSlot));
  void* mem = platform::AllocatePages(bytes);
  if (mem == nullptr) return nullptr;
  auto* fresh = static_cast<BlockGen*>(mem);  // zeroed pages: every slot empty
  fresh->mask = slots - 1;
  BlockGen* expected = nullptr;
  if (!gens[g].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
    (void)platform::FreePages(mem, bytes);
    fresh = expected;
  }
  PublishGen(g);
  return fresh;
}

// The slot holding `key` in `t`, or nullptr.
BlockSlot* FindSlot(BlockGen* t, uintptr_t key) {
  size_t i = HashBlock(key) & t->mask;
  for (int n = 0; n < kMaxProbe; ++n, i = (i + 1) & t->mask) {
    const uintptr_t k = t->slots[i].key.load(std::memory_order_acquire);
    if (k == key) return &t->slots[i];
    if (k == 0) return nullptr;
  }
  return nullptr;
}

// Finds or claims a slot for `key` in `t`; nullptr when the probe sequence is full.
BlockSlot* ClaimSlot(BlockGen* t, uintptr_t key) {
  size_t i = HashBlock(key) & t->mask;
  for (int n = 0; n < kMaxProbe; ++n, i = (i + 1) & t->mask) {
    uintptr_t k = t->slots[i].key.load(std::memory_order_acquire);
    if (k == 0 && t->slots[i].key.compare_exchange_strong(k, key, std::memory_order_acq_rel)) {
      t->used.fetch_add(1, std::memory_order_relaxed);
      return &t->slots[i];
    }
    if (k == key) return &t->slots[i];
  }
  return nullptr;
}

// --- text ----------------------------------------------------------------------------
struct Out {
  char* buf;
  size_t n;
  size_t len = 0;
  void Str(const char* s) {
    while (*s != '\0' && len + 1 < n) buf[len++] = *s++;
  }
  void Hex(uintptr_t v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    char tmp[2 * sizeof(v)];
    int k = 0;
    do {
      tmp[k++] = kDigits[v & 15];
      v >>= 4;
    } while (v != 0);
    Str("0x");
    while (k > 0 && len + 1 < n) buf[len++] = tmp[--k];
  }
  size_t Done() {
    if (n > 0) buf[len < n ? len : n - 1] = '\0';
    return len;
  }
};

// fork(): no lock of the sites or the module table is inherited held. The interning lock
// first: its holder may take the module table's lock (the classifier resolves modules).
void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  intern_lock.Lock();
  LockModulesForFork();
}
void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  UnlockModulesAfterFork();
  intern_lock.Unlock();
}
__attribute__((constructor)) void InstallForkHandlers() {
  pthread_atfork(LockForFork, UnlockAfterFork, UnlockAfterFork);
}

}  // namespace

bool CaptureSite(Site* out) {
  out->depth = 0;
  Walk w{out, 0, 0};
  _Unwind_Backtrace(OnFrame, &w);
  if (out->depth == 0 && w.last_skipped != 0) {
    out->pc[0] = w.last_skipped;
    out->depth = 1;
  }
  for (int i = out->depth; i < kSiteFrames; ++i) out->pc[i] = 0;
  return out->depth != 0;
}

void SetSiteClassifier(SiteClassifier fn) { classifier.store(fn, std::memory_order_release); }

SiteId InternSite(const Site& site) {
  if (site.depth <= 0 || site.depth > kSiteFrames) return 0;
  uint32_t slot;
  SiteTable* t = site_table.load(std::memory_order_acquire);
  if (t != nullptr) {
    if (const uint32_t id = Probe(t, site, &slot)) return id;
  }
  SpinLockHolder h(&intern_lock);
  t = site_table.load(std::memory_order_relaxed);
  if (t == nullptr) {
    t = static_cast<SiteTable*>(platform::AllocatePages(PageRound(sizeof(SiteTable))));
    if (t == nullptr) return 0;
    site_table.store(t, std::memory_order_release);
  }
  if (const uint32_t id = Probe(t, site, &slot)) return id;
  const uint32_t n = site_count.load(std::memory_order_relaxed);
  if (n >= kMaxSites) return 0;
  const uint32_t id = n + 1;
  SiteEntry& e = t->entries[id];
  e.site = site;
  const SiteClassifier fn = classifier.load(std::memory_order_acquire);
  e.stats.tagged.store(fn == nullptr || fn(site) ? 1 : 0, std::memory_order_relaxed);
  site_count.store(id, std::memory_order_release);
  t->index[slot].store(id, std::memory_order_release);
  return id;
}

const Site* SiteById(SiteId id) {
  SiteTable* t = site_table.load(std::memory_order_acquire);
  if (t == nullptr || id == 0 || id > site_count.load(std::memory_order_acquire)) return nullptr;
  return &t->entries[id].site;
}

SiteStats* StatsOf(SiteId id) {
  SiteTable* t = site_table.load(std::memory_order_acquire);
  if (t == nullptr || id == 0 || id > site_count.load(std::memory_order_acquire)) return nullptr;
  return &t->entries[id].stats;
}

uint32_t SiteCount() { return site_count.load(std::memory_order_acquire); }

void RecordBlockSite(const void* block, SiteId id) {
  const auto key = reinterpret_cast<uintptr_t>(block);
  if (key == 0 || id == 0) return;
  any_recorded.store(true, std::memory_order_relaxed);
  // Into the newest generation only: an older slot of the same address (a reused block)
  // was zeroed by ForgetBlockSite, and lookups take the newest non-zero entry.
  for (;;) {
    const int n = gen_count.load(std::memory_order_acquire);
    BlockGen* t = n == 0 ? nullptr : gens[n - 1].load(std::memory_order_acquire);
    if (t != nullptr && t->used.load(std::memory_order_relaxed) <= (t->mask + 1) / 2) {
      if (BlockSlot* s = ClaimSlot(t, key)) {
        s->site.store(id, std::memory_order_release);
        return;
      }
    }
    // Full (or no table yet): the next generation. Without one the block stays siteless.
    if (n >= kMaxGens || NewGen(n) == nullptr) return;
  }
}

void ForgetBlockSite(const void* block) {
  if (!any_recorded.load(std::memory_order_relaxed)) return;
  const auto key = reinterpret_cast<uintptr_t>(block);
  const int n = gen_count.load(std::memory_order_acquire);
  for (int g = 0; g < n; ++g) {
    if (BlockSlot* s = FindSlot(gens[g].load(std::memory_order_acquire), key)) {
      s->site.store(0, std::memory_order_release);
    }
  }
}

SiteId BlockSite(const void* block) {
  if (!any_recorded.load(std::memory_order_relaxed)) return 0;
  const auto key = reinterpret_cast<uintptr_t>(block);
  const int n = gen_count.load(std::memory_order_acquire);
  for (int g = n - 1; g >= 0; --g) {
    if (BlockSlot* s = FindSlot(gens[g].load(std::memory_order_acquire), key)) {
      if (const SiteId id = s->site.load(std::memory_order_acquire)) return id;
    }
  }
  return 0;
}

size_t FormatSite(const Site& site, char* buf, size_t n) {
  Out o{buf, n};
  for (int i = 0; i < site.depth && i < kSiteFrames; ++i) {
    if (i != 0) o.Str(" ");
    ModuleInfo m;
    if (ModuleOf(site.pc[i], &m)) {
      o.Str(m.name);
      o.Str("+");
      o.Hex(site.pc[i] - m.base);
    } else {
      o.Str("?+");  // in no known module (JIT code): parseable, matches only itself
      o.Hex(site.pc[i]);
    }
  }
  return o.Done();
}

size_t FormatSymbols(const Site& site, char* buf, size_t n) {
  Out o{buf, n};
  for (int i = 0; i < site.depth && i < kSiteFrames; ++i) {
    if (i != 0) o.Str(" < ");
    char sym[256];
    // pc is a return address: pc - 1 is inside the call, in the caller's function.
    if (site.pc[i] != 0 &&
        absl::Symbolize(reinterpret_cast<const void*>(site.pc[i] - 1), sym, sizeof(sym))) {
      o.Str(sym);
    } else {
      o.Str("?");
    }
  }
  return o.Done();
}

}  // namespace pmalloc::internal
