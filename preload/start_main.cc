// PMALLOC_CONF=lockdown:main: lock every pool when main() is entered, after the program's
// constructors built their data. A library constructor runs too early (before the
// executable's constructors), so the face defines __libc_start_main, which the executable
// calls from _start, and hands glibc's a main() that first runs the lockdown. This works
// preloaded and linked (-lpmalloc precedes libc in the executable's lookup order); with
// dlopen the program already started and the option has no effect.
#include <dlfcn.h>

#include "core/config.h"
#include "core/fatal.h"
#include "core/triggers.h"
#include "pmalloc/pmalloc.h"

namespace {

using MainFn = int (*)(int, char**, char**);
using StartFn = int (*)(MainFn, int, char**, void (*)(void), void (*)(void), void (*)(void), void*);

MainFn real_main = nullptr;

int MainWithLockdown(int argc, char** argv, char** envp) {
  pmalloc::internal::OnMainEntry();
  return real_main(argc, argv, envp);
}

}  // namespace

extern "C" PMALLOC_EXPORT int __libc_start_main(MainFn main, int argc, char** argv,
                                                void (*init)(void), void (*fini)(void),
                                                void (*rtld_fini)(void), void* stack_end) {
  auto next = reinterpret_cast<StartFn>(dlvsym(RTLD_NEXT, "__libc_start_main", "GLIBC_2.34"));
  if (next == nullptr) next = reinterpret_cast<StartFn>(dlsym(RTLD_NEXT, "__libc_start_main"));
  if (next == nullptr) pmalloc::internal::FatalNoLibcStartMain();
  if (pmalloc::internal::GetConfig().lockdown.main) {
    real_main = main;
    main = MainWithLockdown;
  }
  return next(main, argc, argv, init, fini, rtld_fini, stack_end);
}
