// Run linked with -lpmalloc AND with LD_PRELOAD=libpmalloc.so: the library must be loaded
// once (one registry, one window, one scope slot). Exit 0 and "one registry" on success.
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmalloc/pmalloc.h"

static int Count(struct dl_phdr_info* info, size_t, void* arg) {
  if (info->dlpi_name != nullptr && strstr(info->dlpi_name, "libpmalloc") != nullptr) {
    ++*static_cast<int*>(arg);
  }
  return 0;
}

int main() {
  const char* preload = getenv("LD_PRELOAD");
  if (preload == nullptr || strstr(preload, "libpmalloc") == nullptr) {
    fprintf(stderr, "LD_PRELOAD does not name libpmalloc: the test would prove nothing\n");
    return 2;
  }
  int copies = 0;
  dl_iterate_phdr(Count, &copies);
  // Every way of reaching the API lands in the same object.
  void* via_dlsym = dlsym(RTLD_DEFAULT, "pmalloc_default_pool");
  void* handle = dlopen(preload, RTLD_NOW | RTLD_NOLOAD);
  void* via_handle = handle == nullptr ? nullptr : dlsym(handle, "pmalloc_default_pool");
  pmalloc_pool* pool = pmalloc_default_pool();
  auto fn = reinterpret_cast<pmalloc_pool* (*)(void)>(via_handle);
  pmalloc_pool* prev = pmalloc_scope_enter(pool);
  void* p = malloc(100);  // resolved through the preload, routed by the same scope slot
  pmalloc_scope_exit(prev);
  const bool routed = pmalloc_pool_of(p) == pool;
  free(p);
  const bool same_symbol = via_dlsym == reinterpret_cast<void*>(&pmalloc_default_pool);
  const bool same_pool = fn != nullptr && fn() == pool;
  const bool ok = copies == 1 && same_symbol && same_pool && routed;
  printf("copies=%d same_symbol=%d same_pool=%d routed=%d\n", copies, same_symbol, same_pool,
         routed);
  if (!ok) return 1;
  printf("one registry\n");
  return 0;
}
