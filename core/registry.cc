#include "core/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include <atomic>
#include <new>

#include "absl/base/attributes.h"
#include "absl/base/const_init.h"
#include "absl/base/internal/spinlock.h"
#include "core/config.h"
#include "core/disabled_blocks.h"
#include "core/fault_report.h"
#include "core/log.h"
#include "core/platform.h"
#include "core/ro_state.h"

namespace pmalloc::internal {

using absl::base_internal::SpinLock;
using absl::base_internal::SpinLockHolder;

namespace {

// Written once under registry_lock before range_count publishes it; `sealed` changes
// later, under the lock too. The fault handler reads them without the lock.
struct LockdownRange {
  void* start;
  size_t len;
  const char* name;
  std::atomic<bool> sealed;
  bool shared;  // moved onto a read-only shared memfd mapping (protect:shared)
};

ABSL_CONST_INIT SpinLock registry_lock(absl::kConstInit, absl::base_internal::SCHEDULE_KERNEL_ONLY);
ABSL_CONST_INIT Pool* pools = nullptr;  // guarded by registry_lock
ABSL_CONST_INIT std::atomic<Pool*> default_pool{nullptr};
ABSL_CONST_INIT std::atomic<bool> locked_down{false};
ABSL_CONST_INIT bool fork_handlers_installed = false;  // guarded by registry_lock
// Ranges live in chunks that are never freed: the first is static (registration runs from
// module constructors, before anything else of pmalloc), later ones are mapped pages, so
// any number of ranges can be registered and the fault handler walks them lock-free.
constexpr size_t kRangesPerChunk = 256;
struct RangeChunk {
  LockdownRange ranges[kRangesPerChunk] = {};
  std::atomic<RangeChunk*> next{nullptr};  // published (release) before range_count grows
};
ABSL_CONST_INIT RangeChunk first_chunk;
ABSL_CONST_INIT RangeChunk* last_chunk = &first_chunk;  // guarded by registry_lock
// Written under registry_lock (release: the entry is complete); read lock-free.
ABSL_CONST_INIT std::atomic<size_t> range_count{0};

// Calls fn(range) for the first n ranges. Lock-free: n from an acquire load of range_count.
template <class Fn>
bool ForEachRange(size_t n, Fn fn) {
  const RangeChunk* chunk = &first_chunk;
  for (size_t i = 0; i < n; ++i) {
    if (i != 0 && i % kRangesPerChunk == 0) chunk = chunk->next.load(std::memory_order_acquire);
    if (fn(const_cast<LockdownRange&>(chunk->ranges[i % kRangesPerChunk]))) return true;
  }
  return false;
}

// Fork: hold every pmalloc lock across fork so the child never inherits one mid-update.
void PrepareFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  registry_lock.Lock();
  for (Pool* p = pools; p != nullptr; p = p->next) p->LockForFork();
  Window::LockForFork();
  disabled_blocks::LockForFork();
}

void AfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  disabled_blocks::UnlockAfterFork();
  Window::UnlockAfterFork();
  for (Pool* p = pools; p != nullptr; p = p->next) p->UnlockAfterFork();
  registry_lock.Unlock();
}

// The memfd's name, "pmalloc:static:<last path component of the range's name>".
void StaticMapName(const char* name, char* out, size_t size) {
  const char* base = name == nullptr ? "" : name;
  for (const char* c = base; *c != '\0'; ++c) {
    if (*c == '/') base = c + 1;
  }
  snprintf(out, size, "pmalloc:static:%s", base);
}

// mprotect(PROT_READ) comes first, on every lockdown (cheap, and restores PROT_READ if it
// was changed): a store racing lockdown either lands before it or faults, never lost.
// Under protect:shared (the default) the range's pages then move onto a read-only
// MAP_SHARED memfd mapping, as pool areas do, so /proc/PID/mem cannot write them either;
// every page is copied (a module's .data is file-backed: untouched pages hold the file's
// bytes). If the move fails the range keeps the mprotect, and one line says so.
bool ProtectRange(LockdownRange& r, bool seal, int* err) {
  // A write into a protected range gets a report naming it. Installed here, when a range is
  // first protected, not when it registers (every module constructor registers, libpmalloc's
  // own included): a process that never locks down keeps its signal dispositions.
  InstallFaultHandler();
  // A sealed range is read-only for good, and mprotect on it fails with EPERM: nothing to do
  // (a later lockdown, or one in a forked child, which inherits the seal).
  if (r.sealed.load(std::memory_order_relaxed)) return true;
  if (!platform::ProtectReadOnly(r.start, r.len)) {
    if (*err == 0) *err = errno;
    return false;
  }
  if (!r.shared && GetConfig().protect_shared) {
    char map_name[128];
    StaticMapName(r.name, map_name, sizeof(map_name));
    if (platform::RemapSharedReadOnly(r.start, r.len, r.len, map_name, platform::CopyPages::kAll)) {
      r.shared = true;
    } else {
      LogLine line;
      line.Str("pmalloc: static range '").Str(r.name == nullptr ? "?" : r.name);
      line.Str("': cannot move to a shared mapping (errno ").Dec(static_cast<uint64_t>(errno));
      line.Str("): protected with mprotect only, /proc/PID/mem can still write it");
      line.Emit();
    }
  }
  if (seal && !r.sealed.load(std::memory_order_relaxed)) {
    if (platform::Seal(r.start, r.len)) {
      r.sealed.store(true, std::memory_order_relaxed);
    } else if (*err == 0) {
      *err = errno;
    }
  }
  return true;
}

}  // namespace

Pool* Registry::CreatePool(const char* name, size_t refill, unsigned align_order, unsigned flags) {
  (void)GetConfig();  // applies window: before the first area reserves the window
  Pool* pool = Pool::Create(name, refill, align_order, flags);
  if (pool == nullptr) return nullptr;
  bool install = false;
  {
    SpinLockHolder h(&registry_lock);
    pool->next = pools;
    if (pools != nullptr) pools->prev = pool;
    pools = pool;
    install = !fork_handlers_installed;
    fork_handlers_installed = true;
  }
  // Outside the lock: pthread_atfork may allocate.
  if (install) {
    pthread_atfork(PrepareFork, AfterFork, AfterFork);
    InstallFaultHandler();  // pool faults get a report (core/fault_report.h)
  }
  return pool;
}

int Registry::DestroyPool(Pool* pool) {
  {
    SpinLockHolder h(&registry_lock);
    if (pool == default_pool.load(std::memory_order_relaxed)) {
      errno = EPERM;  // the default pool lives as long as the process
      return -1;
    }
    if (pool->UnmapAreas() != 0) return -1;
    if (pool->prev != nullptr) pool->prev->next = pool->next;
    if (pool->next != nullptr) pool->next->prev = pool->prev;
    if (pools == pool) pools = pool->next;
  }
  Pool::Delete(pool);
  return 0;
}

namespace {
// Read-only after lockdown (core/ro_state.h).
ABSL_CONST_INIT PMALLOC_RO_STATE RoSlot<std::atomic<void (*)()>> before_lockdown{{nullptr}};
}  // namespace

void Registry::SetBeforeLockdown(void (*fn)()) {
  RoWrite w;
  if (w.ok()) w(&before_lockdown)->store(fn, std::memory_order_release);
}

int Registry::Lockdown(unsigned flags) {
  if (void (*fn)() = before_lockdown.v.load(std::memory_order_acquire)) fn();
  const bool seal = (flags & PMALLOC_LOCKDOWN_SEAL) != 0;
  int err = 0;
  SpinLockHolder h(&registry_lock);
  {
    platform::FdBatch closing;  // the pools' memfds, closed together (a few close_range)
    for (Pool* p = pools; p != nullptr; p = p->next) {
      if ((p->flags() & PMALLOC_POOL_MANUAL) != 0) continue;
      if ((seal ? p->Seal(&closing) : p->Protect(&closing)) != 0 && err == 0) err = errno;
    }
  }
  ForEachRange(range_count.load(std::memory_order_relaxed), [&](LockdownRange& r) {
    ProtectRange(r, seal, &err);
    return false;
  });
  // pmalloc's own state last: the hook above and the pools' protect may still write it.
  // What a first pool or range after lockdown would write there is written now (the window's
  // bounds, the chained signal actions): after a sealed lockdown no write is possible.
  (void)Window::EnsureInit();
  InstallFaultHandler();
  if (LockRoState(seal) != 0 && err == 0) err = errno;
  locked_down.store(true, std::memory_order_release);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}

int Registry::RegisterRange(void* start, size_t len, const char* name) {
  const size_t page = platform::PageSize();
  if (start == nullptr || len == 0 || (reinterpret_cast<uintptr_t>(start) & (page - 1)) != 0 ||
      (len & (page - 1)) != 0) {
    errno = EINVAL;
    return -1;
  }
  SpinLockHolder h(&registry_lock);
  const size_t n = range_count.load(std::memory_order_relaxed);
  if (n != 0 && n % kRangesPerChunk == 0) {
    void* mem = platform::AllocatePages((sizeof(RangeChunk) + platform::PageSize() - 1) &
                                        ~(platform::PageSize() - 1));
    if (mem == nullptr) {
      errno = ENOMEM;
      return -1;
    }
    RangeChunk* chunk = new (mem) RangeChunk();
    last_chunk->next.store(chunk, std::memory_order_release);
    last_chunk = chunk;
  }
  LockdownRange& r = last_chunk->ranges[n % kRangesPerChunk];
  r.start = start;
  r.len = len;
  r.name = name;
  r.sealed.store(false, std::memory_order_relaxed);
  r.shared = false;
  if (locked_down.load(std::memory_order_relaxed)) {
    int err = 0;
    if (!ProtectRange(r, /*seal=*/false, &err)) {
      errno = err;
      return -1;
    }
  }
  range_count.store(n + 1, std::memory_order_release);
  return 0;
}

bool Registry::RangeOf(const void* addr, RangeInfo* out) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  return ForEachRange(range_count.load(std::memory_order_acquire), [&](const LockdownRange& r) {
    const uintptr_t start = reinterpret_cast<uintptr_t>(r.start);
    if (a - start >= r.len) return false;
    out->start = start;
    out->len = r.len;
    out->name = r.name;
    out->sealed = r.sealed.load(std::memory_order_relaxed);
    return true;
  });
}

Pool* Registry::DefaultPool() {
  Pool* pool = default_pool.load(std::memory_order_acquire);
  if (pool != nullptr) return pool;
  pool = CreatePool("default", 0, 0, PMALLOC_POOL_GROWABLE);
  if (pool == nullptr) return nullptr;
  Pool* expected = nullptr;
  if (!default_pool.compare_exchange_strong(expected, pool, std::memory_order_acq_rel)) {
    // Another thread won the race; ours is empty and can go.
    DestroyPool(pool);
    return expected;
  }
  return pool;
}

bool Registry::LockedDown() { return locked_down.load(std::memory_order_acquire); }

void Registry::ForEachPool(void (*fn)(Pool* pool, void* arg), void* arg) {
  SpinLockHolder h(&registry_lock);
  for (Pool* p = pools; p != nullptr; p = p->next) fn(p, arg);
}

}  // namespace pmalloc::internal
