// glibc's malloc introspection and tuning calls, answered from jemalloc's statistics and
// the pools: malloc_trim purges jemalloc's dirty pages, mallinfo/mallinfo2 report jemalloc
// plus pool usage, mallopt accepts and ignores glibc tunables (jemalloc is tuned with
// MALLOC_CONF), malloc_stats prints a summary and the per-pool table on stderr.
#include <jemalloc/jemalloc.h>
#include <malloc.h>

#include <climits>

#include "core/log.h"
#include "core/registry.h"
#include "core/stats_report.h"
#include "pmalloc/pmalloc.h"

namespace {

using pmalloc::internal::Pool;

#define PMALLOC_STR2(x) #x
#define PMALLOC_STR(x) PMALLOC_STR2(x)

struct Usage {
  size_t je_allocated = 0;  // bytes in live jemalloc allocations
  size_t je_active = 0;     // bytes in active jemalloc pages
  size_t je_mapped = 0;     // bytes jemalloc has mapped
  size_t pool_live = 0;     // bytes in live pool allocations
  size_t pool_mapped = 0;   // bytes of mapped pool areas
};

size_t JeStat(const char* name) {
  size_t v = 0;
  size_t len = sizeof(v);
  return mallctl(name, &v, &len, nullptr, 0) == 0 ? v : 0;
}

void AddPool(Pool* pool, void* arg) {
  pmalloc_stats s;
  pool->Stats(&s);
  auto* u = static_cast<Usage*>(arg);
  u->pool_live += s.live_bytes;
  u->pool_mapped += s.mapped_bytes;
}

Usage Measure() {
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  mallctl("epoch", &epoch, &len, &epoch, len);  // refreshes jemalloc's statistics
  Usage u;
  u.je_allocated = JeStat("stats.allocated");
  u.je_active = JeStat("stats.active");
  u.je_mapped = JeStat("stats.mapped");
  pmalloc::internal::Registry::ForEachPool(AddPool, &u);
  return u;
}

int Clamp(size_t v) { return v > INT_MAX ? INT_MAX : static_cast<int>(v); }

}  // namespace

extern "C" {

PMALLOC_EXPORT int malloc_trim(size_t) noexcept {
  const int ok =
      mallctl("arena." PMALLOC_STR(MALLCTL_ARENAS_ALL) ".purge", nullptr, nullptr, nullptr, 0);
  return ok == 0 ? 1 : 0;
}

// Field meanings follow glibc: arena = heap bytes obtained, hblkhd = bytes in separately
// mapped regions (here: pool areas), uordblks = bytes in use, fordblks = free bytes held.
PMALLOC_EXPORT struct mallinfo2 mallinfo2(void) noexcept {
  const Usage u = Measure();
  struct mallinfo2 mi = {};
  mi.arena = u.je_mapped;
  mi.hblks = 0;
  mi.hblkhd = u.pool_mapped;
  mi.uordblks = u.je_allocated + u.pool_live;
  mi.fordblks = u.je_active - u.je_allocated;
  return mi;
}

PMALLOC_EXPORT struct mallinfo mallinfo(void) noexcept {
  const struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi = {};
  mi.arena = Clamp(m2.arena);
  mi.hblkhd = Clamp(m2.hblkhd);
  mi.uordblks = Clamp(m2.uordblks);
  mi.fordblks = Clamp(m2.fordblks);
  return mi;
}

PMALLOC_EXPORT int mallopt(int, int) noexcept { return 1; }

PMALLOC_EXPORT void malloc_stats(void) noexcept {
  const Usage u = Measure();
  pmalloc::internal::LogLine line;
  line.Str("pmalloc: jemalloc allocated ")
      .Dec(u.je_allocated)
      .Str(" active ")
      .Dec(u.je_active)
      .Str(" mapped ")
      .Dec(u.je_mapped)
      .Str("; pools live ")
      .Dec(u.pool_live)
      .Str(" mapped ")
      .Dec(u.pool_mapped);
  line.Emit();
  pmalloc::internal::PrintPoolStats();
}

}  // extern "C"
