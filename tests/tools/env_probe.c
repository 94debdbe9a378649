/* Prints what pmalloc-run gave it: LD_PRELOAD, PMALLOC_CONF, and the file of the
 * libpmalloc.so actually loaded (found by symbol: this program does not link it), then
 * makes one pool allocation through it. Used by tests/tools/run_test.sh and the package test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  const char* preload = getenv("LD_PRELOAD");
  const char* conf = getenv("PMALLOC_CONF");
  printf("LD_PRELOAD=%s\n", preload ? preload : "(unset)");
  printf("PMALLOC_CONF=%s\n", conf ? conf : "(unset)");
  void* create = dlsym(RTLD_DEFAULT, "pmalloc_create_pool");
  void* (*alloc)(void*, size_t) = (void* (*)(void*, size_t))dlsym(RTLD_DEFAULT, "pmalloc");
  Dl_info info;
  if (create == NULL || alloc == NULL || dladdr(create, &info) == 0) {
    printf("pmalloc: not loaded\n");
    return 0;
  }
  void* pool = ((void* (*)(const char*, size_t, unsigned, unsigned))create)("probe", 0, 0, 0);
  printf("pmalloc: %s\n", info.dli_fname);
  printf("pool allocation: %s\n", pool != NULL && alloc(pool, 64) != NULL ? "ok" : "failed");
  return 0;
}
