// The loaded modules (executable and shared objects) as tagging rules name them: the file
// name of each object's real path (the executable's from /proc/self/exe, read at start-up:
// programs such as nginx rewrite argv and environ, so dladdr's name for the executable is
// never used), its load base and its GNU build-id. And the wrapper functions (ngx_palloc,
// zmalloc, ...) whose frames a site skips, as address ranges.
//
// The table is built from dl_iterate_phdr at the first use and rebuilt when an address is in
// no known module and the loader has added objects since (dlopen). Tables are never freed
// (a rebuild publishes a new one; at most kMaxTables), so lookups are lock-free and
// async-signal-safe: ModuleOf reads the published table only.
#ifndef PMALLOC_CORE_MODULES_H_
#define PMALLOC_CORE_MODULES_H_

#include <cstddef>
#include <cstdint>

namespace pmalloc::internal {

// One loaded object. Strings point into the table (never freed while the process runs).
struct ModuleInfo {
  const char* name;      // file name of the real path: "nginx", "libc.so.6"
  const char* path;      // real path ("linux-vdso.so.1" for the vDSO)
  const char* build_id;  // lower-case hex of the GNU build-id, "" when it has none
  uintptr_t base;        // load base (dlpi_addr); offsets are pc - base
};

// Builds the table and resolves the built-in wrappers (kDefaultWrappers), once; later calls
// return at once. More wrappers: AddWrapper. Not async-signal-safe. Called by the
// library constructor that enables tagging, and by the first lookup otherwise.
void InitModules();

// The module containing `pc`, from the published table: async-signal-safe, never rebuilds.
bool ModuleOf(uintptr_t pc, ModuleInfo* out);

// As ModuleOf, but rebuilds the table once if `pc` is in no known module and objects were
// loaded since it was built. Not async-signal-safe (dl_iterate_phdr); never calls malloc
// itself (realpath may, for paths longer than 1 KiB).
bool FindModule(uintptr_t pc, ModuleInfo* out);

// The module named `name` (file name of its real path), from the published table.
bool ModuleNamed(const char* name, ModuleInfo* out);

// The dynamic loader's module name (file name of the real path of the executable's
// PT_INTERP, "ld-linux-x86-64.so.2"), "" for a static executable. After InitModules.
const char* LoaderName();

// Visits every known module with (name, build_id_hex, path).
void ForEachModule(void (*fn)(const char* name, const char* build_id, const char* path, void* arg),
                   void* arg);

// True for a return address inside libpmalloc itself (its frames are never a site's).
// Async-signal-safe.
bool InPmalloc(uintptr_t pc);

// Adds a wrapper function by symbol name: the range of the function of that name that
// dlsym(RTLD_DEFAULT) finds (exported symbols: dynsym), with its size from the symbol
// table. A name no loaded module exports is kept and resolved again at the next rebuild.
// False when the wrapper list is full (kMaxWrappers). Not async-signal-safe.
inline constexpr int kMaxWrappers = 256;
bool AddWrapper(const char* symbol, size_t len);

// True for a return address inside a resolved wrapper function. Async-signal-safe.
bool InWrapper(uintptr_t pc);

// fork(): the table's build lock is taken before and released after in both processes, so
// a child never inherits it held (core/sites.cc's fork handlers call these, after taking
// the interning lock: that is the lock order).
void LockModulesForFork();
void UnlockModulesAfterFork();

// The built-in wrapper names, for the docs and tests.
extern const char* const kDefaultWrappers[];
extern const size_t kDefaultWrapperCount;

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_MODULES_H_
