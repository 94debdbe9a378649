#include "core/modules.h"

#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>

#include "absl/base/attributes.h"
#include "absl/base/internal/spinlock.h"
#include "absl/base/thread_annotations.h"
#include "core/platform.h"

namespace pmalloc::internal {

const char* const kDefaultWrappers[] = {
    // nginx
    "ngx_alloc", "ngx_calloc", "ngx_palloc", "ngx_pnalloc", "ngx_pcalloc", "ngx_palloc_small",
    "ngx_palloc_large", "ngx_pmemalign", "ngx_memalign", "ngx_pstrdup", "ngx_create_pool",
    // redis
    "zmalloc", "zcalloc", "zrealloc", "ztrymalloc_usable", "ztrycalloc_usable",
    "ztryrealloc_usable", "zmalloc_usable", "zcalloc_usable", "zrealloc_usable", "zstrdup",
    "ztrymalloc", "ztrycalloc", "ztryrealloc",
    // GNU, glib, OpenSSL
    "xmalloc", "xcalloc", "xrealloc", "xstrdup", "g_malloc", "g_malloc0", "g_realloc",
    "g_try_malloc", "g_try_malloc0", "g_strdup", "g_slice_alloc", "g_slice_alloc0",
    "OPENSSL_malloc", "CRYPTO_malloc", "CRYPTO_zalloc", "CRYPTO_realloc", "CRYPTO_strdup",
    "CRYPTO_strndup",
    // libc
    "strdup", "strndup", "__strdup", "__strndup"};
const size_t kDefaultWrapperCount = sizeof(kDefaultWrappers) / sizeof(kDefaultWrappers[0]);

namespace {

using absl::base_internal::SpinLock;
using absl::base_internal::SpinLockHolder;

constexpr int kMaxModules = 512;
constexpr size_t kStringBytes = 128 << 10;
constexpr int kMaxTables = 64;  // rebuilds after dlopen; beyond it the last table stays

struct Module {
  uintptr_t base;
  uintptr_t lo;  // [lo, hi): the span of its PT_LOAD segments
  uintptr_t hi;
  uint32_t name;  // offsets into Table::strings
  uint32_t path;
  uint32_t build_id;
};

struct Table {
  int count;
  unsigned long long adds;  // dlpi_adds when built
  uint32_t used;            // bytes of strings
  Module mods[kMaxModules];
  char strings[kStringBytes];
};

ABSL_CONST_INIT SpinLock build_lock(absl::kConstInit, absl::base_internal::SCHEDULE_KERNEL_ONLY);
ABSL_CONST_INIT std::atomic<Table*> table{nullptr};
ABSL_CONST_INIT int tables_built = 0;  // guarded by build_lock
ABSL_CONST_INIT char exe_path[PATH_MAX] = {};
ABSL_CONST_INIT char loader_name[256] = {};
ABSL_CONST_INIT std::atomic<bool> inited{false};
ABSL_CONST_INIT std::atomic<uintptr_t> own_lo{0};
ABSL_CONST_INIT std::atomic<uintptr_t> own_hi{0};

struct Range {
  std::atomic<uintptr_t> lo;
  std::atomic<uintptr_t> hi;
};
// Wrapper names (guarded by build_lock) and their resolved ranges (published by count).
ABSL_CONST_INIT char wrapper_names[kMaxWrappers][64] = {};
ABSL_CONST_INIT bool wrapper_resolved[kMaxWrappers] = {};
ABSL_CONST_INIT int wrapper_name_count = 0;
ABSL_CONST_INIT Range wrapper_ranges[kMaxWrappers] = {};
ABSL_CONST_INIT std::atomic<int> wrapper_range_count{0};

uint32_t AddString(Table* t, const char* s, size_t n) {
  if (t->used + n + 1 > kStringBytes) return 0;  // offset 0 is the empty string
  const uint32_t off = t->used;
  memcpy(t->strings + off, s, n);
  t->strings[off + n] = '\0';
  t->used += static_cast<uint32_t>(n + 1);
  return off;
}

// Lower-case hex of the NT_GNU_BUILD_ID note among `info`'s PT_NOTE segments.
uint32_t AddBuildId(Table* t, const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    const char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* nh = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const char* name = p + sizeof(ElfW(Nhdr));
      const char* desc = name + ((nh->n_namesz + 3) & ~3u);
      const char* next = desc + ((nh->n_descsz + 3) & ~3u);
      if (next > end) break;
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
          nh->n_descsz <= 64) {
        char hex[129];
        static constexpr char kDigits[] = "0123456789abcdef";
        for (uint32_t j = 0; j < nh->n_descsz; ++j) {
          const auto b = static_cast<unsigned char>(desc[j]);
          hex[2 * j] = kDigits[b >> 4];
          hex[2 * j + 1] = kDigits[b & 15];
        }
        return AddString(t, hex, 2 * nh->n_descsz);
      }
      p = next;
    }
  }
  return 0;
}

int AddModule(dl_phdr_info* info, size_t, void* arg) {
  auto* t = static_cast<Table*>(arg);
  if (t->count == 0) t->adds = info->dlpi_adds;
  if (t->count >= kMaxModules) return 1;
  Module& m = t->mods[t->count];
  m.base = info->dlpi_addr;
  m.lo = ~uintptr_t{0};
  m.hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (lo < m.lo) m.lo = lo;
    if (lo + ph.p_memsz > m.hi) m.hi = lo + ph.p_memsz;
  }
  if (m.hi == 0) return 0;
  // The executable is the object without a name (the first); the others by real path.
  const char* path = info->dlpi_name;
  char real[PATH_MAX];
  if (path == nullptr || path[0] == '\0') {
    path = exe_path[0] != '\0' ? exe_path : "?";
    for (int i = 0; t->count == 0 && i < info->dlpi_phnum; ++i) {  // the loader's name
      const ElfW(Phdr)& ph = info->dlpi_phdr[i];
      if (ph.p_type != PT_INTERP) continue;
      const char* interp = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
      const char* r = realpath(interp, real) != nullptr ? real : interp;
      const char* s = strrchr(r, '/');
      s = s != nullptr ? s + 1 : r;
      if (strlen(s) < sizeof(loader_name)) memcpy(loader_name, s, strlen(s) + 1);
    }
  } else if (path[0] == '/' && realpath(path, real) != nullptr) {
    path = real;
  }
  const char* slash = strrchr(path, '/');
  const char* name = slash != nullptr ? slash + 1 : path;
  m.path = AddString(t, path, strlen(path));
  m.name = AddString(t, name, strlen(name));
  m.build_id = AddBuildId(t, info);
  ++t->count;
  return 0;
}

// REQUIRES: build_lock held.
void Rebuild() {
  if (tables_built >= kMaxTables) return;
  const size_t page = platform::PageSize();
  void* mem = platform::AllocatePages((sizeof(Table) + page - 1) & ~(page - 1));
  if (mem == nullptr) return;
  auto* t = static_cast<Table*>(mem);
  t->used = 1;  // offset 0: ""
  dl_iterate_phdr(AddModule, t);
  ++tables_built;
  table.store(t, std::memory_order_release);
}

unsigned long long CurrentAdds() {
  unsigned long long adds = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* arg) {
        *static_cast<unsigned long long*>(arg) = info->dlpi_adds;
        return 1;
      },
      &adds);
  return adds;
}

void Describe(const Table* t, const Module& m, ModuleInfo* out) {
  out->name = t->strings + m.name;
  out->path = t->strings + m.path;
  out->build_id = t->strings + m.build_id;
  out->base = m.base;
}

bool Lookup(const Table* t, uintptr_t pc, ModuleInfo* out) {
  if (t == nullptr) return false;
  for (int i = 0; i < t->count; ++i) {
    const Module& m = t->mods[i];
    if (pc >= m.lo && pc < m.hi) {
      Describe(t, m, out);
      return true;
    }
  }
  return false;
}

// REQUIRES: build_lock held. Resolves the names not resolved yet.
void ResolveWrappers() {
  for (int i = 0; i < wrapper_name_count; ++i) {
    if (wrapper_resolved[i]) continue;
    void* addr = dlsym(RTLD_DEFAULT, wrapper_names[i]);
    if (addr == nullptr) continue;
    Dl_info info;
    void* extra = nullptr;
    const int found = dladdr1(addr, &info, &extra, RTLD_DL_SYMENT);
    const auto* sym = static_cast<const ElfW(Sym)*>(extra);
    if (found == 0 || sym == nullptr || sym->st_size == 0) {
      continue;
    }
    const uintptr_t lo = reinterpret_cast<uintptr_t>(addr);
    if (InPmalloc(lo)) continue;  // the face's own strdup & co are pmalloc frames anyway
    wrapper_resolved[i] = true;
    const int n = wrapper_range_count.load(std::memory_order_relaxed);
    wrapper_ranges[n].lo.store(lo, std::memory_order_relaxed);
    wrapper_ranges[n].hi.store(lo + sym->st_size, std::memory_order_relaxed);
    wrapper_range_count.store(n + 1, std::memory_order_release);
  }
}

// REQUIRES: build_lock held.
bool AddWrapperLocked(const char* symbol, size_t len) {
  if (len == 0 || len >= sizeof(wrapper_names[0])) return false;
  for (int i = 0; i < wrapper_name_count; ++i) {
    if (strlen(wrapper_names[i]) == len && memcmp(wrapper_names[i], symbol, len) == 0) {
      return true;
    }
  }
  if (wrapper_name_count >= kMaxWrappers) return false;
  memcpy(wrapper_names[wrapper_name_count], symbol, len);
  wrapper_names[wrapper_name_count][len] = '\0';
  ++wrapper_name_count;
  return true;
}

void InitLocked() {
  if (inited.load(std::memory_order_relaxed)) return;
  const ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
  exe_path[n > 0 ? n : 0] = '\0';
  Rebuild();
  ModuleInfo self;
  if (Lookup(table.load(std::memory_order_relaxed), reinterpret_cast<uintptr_t>(&InPmalloc),
             &self)) {
    const Table* t = table.load(std::memory_order_relaxed);
    for (int i = 0; i < t->count; ++i) {
      if (t->mods[i].base == self.base) {
        own_lo.store(t->mods[i].lo, std::memory_order_relaxed);
        own_hi.store(t->mods[i].hi, std::memory_order_relaxed);
      }
    }
  }
  for (size_t i = 0; i < kDefaultWrapperCount; ++i) {
    AddWrapperLocked(kDefaultWrappers[i], strlen(kDefaultWrappers[i]));
  }
  ResolveWrappers();
  inited.store(true, std::memory_order_release);
}

}  // namespace

void InitModules() {
  if (inited.load(std::memory_order_acquire)) return;
  SpinLockHolder h(&build_lock);
  InitLocked();
}

bool ModuleOf(uintptr_t pc, ModuleInfo* out) {
  return Lookup(table.load(std::memory_order_acquire), pc, out);
}

bool FindModule(uintptr_t pc, ModuleInfo* out) {
  InitModules();
  if (ModuleOf(pc, out)) return true;
  SpinLockHolder h(&build_lock);
  const Table* t = table.load(std::memory_order_relaxed);
  if (Lookup(t, pc, out)) return true;  // another thread rebuilt meanwhile
  if (t != nullptr && CurrentAdds() == t->adds) return false;
  Rebuild();
  ResolveWrappers();
  return Lookup(table.load(std::memory_order_relaxed), pc, out);
}

const char* LoaderName() { return loader_name; }

bool ModuleNamed(const char* name, ModuleInfo* out) {
  const Table* t = table.load(std::memory_order_acquire);
  if (t == nullptr) return false;
  for (int i = 0; i < t->count; ++i) {
    const Module& m = t->mods[i];
    if (strcmp(t->strings + m.name, name) == 0) {
      Describe(t, m, out);
      return true;
    }
  }
  return false;
}

void ForEachModule(void (*fn)(const char* name, const char* build_id, const char* path, void* arg),
                   void* arg) {
  InitModules();
  const Table* t = table.load(std::memory_order_acquire);
  if (t == nullptr) return;
  for (int i = 0; i < t->count; ++i) {
    const Module& m = t->mods[i];
    fn(t->strings + m.name, t->strings + m.build_id, t->strings + m.path, arg);
  }
}

bool InPmalloc(uintptr_t pc) {
  return pc >= own_lo.load(std::memory_order_relaxed) &&
         pc < own_hi.load(std::memory_order_relaxed);
}

bool AddWrapper(const char* symbol, size_t len) {
  InitModules();
  SpinLockHolder h(&build_lock);
  if (!AddWrapperLocked(symbol, len)) return false;
  ResolveWrappers();
  return true;
}

void LockModulesForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { build_lock.Lock(); }
void UnlockModulesAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { build_lock.Unlock(); }

bool InWrapper(uintptr_t pc) {
  const int n = wrapper_range_count.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    // pc is a return address: the call it returns from lies before it, inside the function.
    if (pc > wrapper_ranges[i].lo.load(std::memory_order_relaxed) &&
        pc <= wrapper_ranges[i].hi.load(std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

}  // namespace pmalloc::internal
