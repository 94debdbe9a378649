// Zone bits: a small table from gfp bit to pool. The table is itself __ro_after_init: after
// pmalloc_lockdown() nobody can redirect a zone to another pool (or to the heap).
#include <errno.h>

#include <atomic>
#include <mutex>

#include "compat/gfp_pool.h"
#include "core/registry.h"
#include "pmalloc/compat/cache.h"
#include "pmalloc/compat/gfp.h"

namespace pmalloc::internal {
namespace {

constexpr unsigned kFirstZoneBit = 25;
static_assert((PMALLOC_GFP_ZONE_MASK >> kFirstZoneBit) == (1u << PMALLOC_GFP_ZONES) - 1,
              "zone bits are the PMALLOC_GFP_ZONES bits above __GFP_LOCKABLE");
static_assert(__GFP_LOCKABLE == (1u << (kFirstZoneBit - 1)), "");

std::atomic<pmalloc_pool*> zones[PMALLOC_GFP_ZONES] __ro_after_init = {};
std::mutex zone_mutex;  // serialises assignment; lookups are lock-free

gfp_t ZoneBit(int i) { return gfp_t{1} << (kFirstZoneBit + i); }

bool IsValidPool(pmalloc_pool* pool) {
  const int saved = errno;
  const bool ok = pool != nullptr && pmalloc_pool_name(pool) != nullptr;
  errno = saved;
  return ok;
}

}  // namespace

bool PoolForGfp(gfp_t flags, pmalloc_pool** pool) {
  const gfp_t route = flags & PMALLOC_GFP_POOL_MASK;
  if (route == 0) {
    *pool = nullptr;
    return true;
  }
  if ((route & (route - 1)) != 0) {
    errno = EINVAL;
    return false;
  }
  if (route == __GFP_LOCKABLE) {
    *pool = pmalloc_default_pool();
    return *pool != nullptr;
  }
  *pool = zones[__builtin_ctz(route) - kFirstZoneBit].load(std::memory_order_acquire);
  if (*pool == nullptr) {
    errno = EINVAL;
    return false;
  }
  return true;
}

}  // namespace pmalloc::internal

using pmalloc::internal::zones;

extern "C" {

gfp_t pmalloc_gfp_zone(pmalloc_pool* pool) {
  if (!pmalloc::internal::IsValidPool(pool)) {
    errno = EINVAL;
    return 0;
  }
  if (pool == pmalloc_default_pool()) return __GFP_LOCKABLE;
  std::lock_guard<std::mutex> lock(pmalloc::internal::zone_mutex);
  for (int i = 0; i < PMALLOC_GFP_ZONES; ++i) {
    if (zones[i].load(std::memory_order_relaxed) == pool) {
      return pmalloc::internal::ZoneBit(i);
    }
  }
  if (pmalloc::internal::Registry::LockedDown()) {
    errno = EPERM;
    return 0;
  }
  for (int i = 0; i < PMALLOC_GFP_ZONES; ++i) {
    if (zones[i].load(std::memory_order_relaxed) == nullptr) {
      zones[i].store(pool, std::memory_order_release);
      return pmalloc::internal::ZoneBit(i);
    }
  }
  errno = ENOSPC;
  return 0;
}

int pmalloc_gfp_zone_release(gfp_t zone) {
  if (zone == 0 || (zone & ~PMALLOC_GFP_ZONE_MASK) != 0 || (zone & (zone - 1)) != 0) {
    errno = EINVAL;
    return -1;
  }
  std::lock_guard<std::mutex> lock(pmalloc::internal::zone_mutex);
  const int i = __builtin_ctz(zone) - pmalloc::internal::kFirstZoneBit;
  if (zones[i].load(std::memory_order_relaxed) == nullptr) {
    errno = EINVAL;
    return -1;
  }
  if (pmalloc::internal::Registry::LockedDown()) {
    errno = EPERM;
    return -1;
  }
  zones[i].store(nullptr, std::memory_order_release);
  return 0;
}

pmalloc_pool* pmalloc_gfp_pool(gfp_t flags) {
  pmalloc_pool* pool = nullptr;
  return pmalloc::internal::PoolForGfp(flags, &pool) ? pool : nullptr;
}

int pmalloc_gfp_valid(gfp_t flags) {
  const int saved = errno;
  pmalloc_pool* pool = nullptr;
  const bool ok = pmalloc::internal::PoolForGfp(flags, &pool);
  errno = saved;
  return ok ? 1 : 0;
}

}  // extern "C"
