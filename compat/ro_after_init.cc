// Registration of each module's pmalloc_ro_after_init section (see pmalloc/compat/cache.h).
// Runs from module constructors, so it may not assume that anything of pmalloc has been
// initialised: the registry is constant-initialised, and this file keeps its own state in
// constant-initialised globals.
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>

#include "core/fatal.h"
#include "pmalloc/compat/cache.h"

namespace {

constexpr size_t kMaxModules = 128;
std::mutex registered_mutex;  // constexpr constructor: usable from any constructor
void* registered[kMaxModules] = {};
size_t registered_count = 0;

// True when `start` was registered before; else remembers it. REQUIRES: registered_mutex.
bool SeenBefore(void* start) {
  for (size_t i = 0; i < registered_count; ++i) {
    if (registered[i] == start) return true;
  }
  if (registered_count < kMaxModules) registered[registered_count++] = start;
  return false;
}

// The main program's copy relocations: for a shared object's exported variable that the
// executable accesses directly, the loader copies the variable into the executable and
// every module then uses the copy — which is not in the protected section.
struct CopyScan {
  void* module;     // dlopen handle of the module being registered
  uintptr_t start;  // its section
  uintptr_t stop;
  const char* copied = nullptr;  // out: first copied variable of the section
};

int ScanMainProgram(dl_phdr_info* info, size_t, void* arg) {
  auto* scan = static_cast<CopyScan*>(arg);
#if defined(__x86_64__)
  const uintptr_t base = info->dlpi_addr;
  // The loader may or may not have relocated these d_ptr values in place.
  auto fix = [base](ElfW(Addr) v) { return v < base ? v + base : v; };
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
    const ElfW(Rela)* rela = nullptr;
    size_t rela_size = 0;
    const ElfW(Sym)* symtab = nullptr;
    const char* strtab = nullptr;
    for (auto* d = reinterpret_cast<const ElfW(Dyn)*>(base + info->dlpi_phdr[i].p_vaddr);
         d->d_tag != DT_NULL; ++d) {
      if (d->d_tag == DT_RELA) rela = reinterpret_cast<const ElfW(Rela)*>(fix(d->d_un.d_ptr));
      if (d->d_tag == DT_RELASZ) rela_size = d->d_un.d_val;
      if (d->d_tag == DT_SYMTAB) symtab = reinterpret_cast<const ElfW(Sym)*>(fix(d->d_un.d_ptr));
      if (d->d_tag == DT_STRTAB) strtab = reinterpret_cast<const char*>(fix(d->d_un.d_ptr));
    }
    if (rela == nullptr || symtab == nullptr || strtab == nullptr) break;
    for (size_t k = 0; k < rela_size / sizeof(ElfW(Rela)); ++k) {
      if (ELF64_R_TYPE(rela[k].r_info) != R_X86_64_COPY) continue;
      const char* name = strtab + symtab[ELF64_R_SYM(rela[k].r_info)].st_name;
      const uintptr_t original = reinterpret_cast<uintptr_t>(dlsym(scan->module, name));
      if (original >= scan->start && original < scan->stop) {
        scan->copied = name;
        break;
      }
    }
    break;
  }
#else
  (void)info;
  (void)scan;
#endif
  return 1;  // the main program comes first: stop after it
}

}  // namespace

extern "C" int pmalloc_ro_after_init_register(void* start, void* stop) {
  if (start == nullptr || start == stop) return 0;  // the module has no such variable
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t s = reinterpret_cast<uintptr_t>(start);
  const uintptr_t e = reinterpret_cast<uintptr_t>(stop);
  Dl_info info{};
  const char* module = "?";
  if (dladdr(start, &info) != 0 && info.dli_fname != nullptr) module = info.dli_fname;
  if (e < s || (s & (page - 1)) != 0 || (e & (page - 1)) != 0) {
    pmalloc::internal::FatalRoAfterInitNotWholePages(start, stop, module);
  }
  std::lock_guard<std::mutex> lock(registered_mutex);
  if (SeenBefore(start)) return 0;
  // Pin the module: its pages stay in the lockdown set, so they must never be unmapped and
  // reused for something else. Then make sure no variable of the section was copied into
  // the executable (a copy would silently stay writable).
  if (info.dli_fname != nullptr) {
    if (void* self = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE)) {
      CopyScan scan{self, s, e};
      dl_iterate_phdr(ScanMainProgram, &scan);
      dlclose(self);
      if (scan.copied != nullptr) pmalloc::internal::FatalRoAfterInitCopied(scan.copied, module);
    }
  }
  if (pmalloc_register_lockdown_range(start, e - s, module) != 0) {
    pmalloc::internal::FatalRoAfterInitNotRegistered(start, stop, module);
  }
  return 0;
}
