// The loaded modules (executable and shared objects) as tagging rules name them: the file
// name of each object's real path (the executable's from /proc/self/exe at start-up, since
// programs such as nginx rewrite argv and environ), its load base and its GNU build-id. And
// the wrapper functions (ngx_palloc, zmalloc, ...) whose frames a site skips, as address
// ranges. The table is built from dl_iterate_phdr and refreshed when an address is not in
// any known module (dlopen); lookups are lock-free and async-signal-safe.
#ifndef PMALLOC_CORE_MODULES_H_
#define PMALLOC_CORE_MODULES_H_

#include <cstddef>
#include <cstdint>

namespace pmalloc::internal {

// One loaded object. Strings point into the table (never freed while the process runs).
struct ModuleInfo {
  const char* name;      // file name of the real path: "nginx", "libc.so.6"
  const char* path;      // real path
  const char* build_id;  // lower-case hex of the GNU build-id, "" when it has none
  uintptr_t base;        // load base (dlpi_addr); offsets are pc - base
};

// Visits every known module with (name, build_id_hex, path).
void ForEachModule(void (*fn)(const char* name, const char* build_id, const char* path,
                              void* arg),
                   void* arg);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_MODULES_H_
