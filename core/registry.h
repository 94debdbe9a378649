// The registry: every live pool, the default lockable pool, lockdown, lockdown ranges
// (protected statics) and the fork handlers that keep pool locks consistent in a child.
// Lock order: registry lock, then a pool's lock, then the window lock (then, across fork
// only, the disable:true block table's lock).
#ifndef PMALLOC_CORE_REGISTRY_H_
#define PMALLOC_CORE_REGISTRY_H_

#include <cstddef>
#include <cstdint>

#include "core/pool.h"

namespace pmalloc::internal {

class Registry {
 public:
  // Creates a pool and links it (nullptr with errno).
  static Pool* CreatePool(const char* name, size_t refill, unsigned align_order, unsigned flags);
  // Releases the pool's pages and unlinks it; -1 with errno (pool intact on EBUSY/EPERM).
  static int DestroyPool(Pool* pool);
  // Protects (and with PMALLOC_LOCKDOWN_SEAL seals) every non-MANUAL pool and range.
  // Calls the before-lockdown hook first.
  static int Lockdown(unsigned flags);
  // `fn` runs at the start of every Lockdown, before anything is protected and before the
  // registry lock is taken (the libc face ends its start-up tagging there, tag:startup).
  // Set once, at start-up; fn must be idempotent and thread-safe.
  static void SetBeforeLockdown(void (*fn)());
  // Adds whole pages to the lockdown set (protected now if lockdown already ran). Any
  // number of ranges (ENOMEM only when no page can be mapped for more).
  static int RegisterRange(void* start, size_t len, const char* name);
  struct RangeInfo {
    uintptr_t start;
    size_t len;
    const char* name;  // what registered it (for __ro_after_init: the module's path)
    bool sealed;
  };
  // The registered range holding `addr`. Lock-free and async-signal-safe (fault reports).
  static bool RangeOf(const void* addr, RangeInfo* out);
  // The default lockable pool, created on first use; nullptr with errno.
  static Pool* DefaultPool();
  // True once pmalloc_lockdown has run.
  static bool LockedDown();

  // Calls fn(pool, arg) for every live pool under the registry lock. fn must not create or
  // destroy pools.
  static void ForEachPool(void (*fn)(Pool* pool, void* arg), void* arg);
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_REGISTRY_H_
