// Registration of each module's pmalloc_ro_after_init section (see pmalloc/compat/cache.h).
// Runs from module constructors, so it may not assume that anything of pmalloc has been
// initialised: the registry is constant-initialised, and this file keeps its own state in
// constant-initialised globals.
#include <dlfcn.h>
#include <errno.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>

#include "core/log.h"
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

[[noreturn]] void Die(const char* what, void* start, void* stop, const char* module) {
  pmalloc::internal::LogLine line;
  line.Str("pmalloc: ").Str(what).Str(" __ro_after_init section ").Ptr(start).Str("-").Ptr(stop);
  line.Str(" of '").Str(module).Str("'");
  pmalloc::internal::Fatal(line);
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
    Die("not whole pages:", start, stop, module);
  }
  std::lock_guard<std::mutex> lock(registered_mutex);
  if (SeenBefore(start)) return 0;
  // Pin the module: its pages stay in the lockdown set, so they must never be unmapped and
  // reused for something else. (For the main program this dlopen fails harmlessly.)
  if (info.dli_fname != nullptr) {
    if (void* self = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE)) {
      dlclose(self);
    }
  }
  if (pmalloc_register_lockdown_range(start, e - s, module) != 0) {
    Die("cannot register", start, stop, module);
  }
  return 0;
}
