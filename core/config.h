// PMALLOC_CONF: process-wide configuration, `key:value,key:value` in the spirit of
// MALLOC_CONF (DESIGN.md §6). Parsed once, on first use, without allocating (it can run
// inside the first malloc or a pool creation made by a constructor). A bad key or value is
// reported with one line on stderr naming it, and ignored; it is never fatal.
//
//   disable:true          pools are served by jemalloc, scopes and lockdown are no-ops
//   seal:true             every pmalloc_lockdown() also seals (PMALLOC_LOCKDOWN_SEAL)
//   stats_print:true      per-pool table on stderr at exit
//   lockdown:main         pmalloc_lockdown() when main() is entered (needs the libc face)
//   lockdown:signal:USR2  pmalloc_lockdown() when the signal arrives (name or number)
//   window:16G            size of the reserved pool window (K, M, G, T suffixes)
//   protect:shared        (default) protecting moves each area onto a read-only shared
//                         memfd mapping: /proc/PID/mem and ptrace writes fail too; costs one
//                         copy of the pool's touched bytes (docs/design.md has the numbers)
//   protect:mprotect      protecting is one mprotect(PROT_READ) per area: 13-50x faster,
//                         but a FOLL_FORCE write through /proc/PID/mem or ptrace succeeds
#ifndef PMALLOC_CORE_CONFIG_H_
#define PMALLOC_CORE_CONFIG_H_

#include <cstddef>

namespace pmalloc::internal {

struct Config {
  bool disable = false;
  bool seal = false;
  bool stats_print = false;
  bool lockdown_main = false;
  int lockdown_signal = 0;  // 0: none
  size_t window = 0;        // 0: default
  bool protect_shared = true;
};

// The parsed configuration. Thread-safe; the first call parses PMALLOC_CONF (and applies
// window: through Window::SetSize), later calls are one acquire load.
const Config& GetConfig();

// Parses `text` into `out`, reporting bad entries on stderr. Exposed for tests.
void ParseConfig(const char* text, Config* out);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_CONFIG_H_
