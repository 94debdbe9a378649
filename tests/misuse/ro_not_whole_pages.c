/* compat: an __ro_after_init section that is not whole pages (what a comdat variable placed
 * last would give), registered the way cache.h's constructor does. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pmalloc/compat/cache.h>
#include <stdio.h>

static char section[3 * 4096] __attribute__((aligned(4096)));

int main(void) {
  char *start = section + 64, *stop = section + 64 + 4096;
  Dl_info info = {0};
  const char *module = "?";
  if (dladdr(start, &info) != 0 && info.dli_fname != NULL) module = info.dli_fname;
  printf("start=%p\nstop=%p\nmodule=%s\n", (void *)start, (void *)stop, module);
  fflush(stdout);
  pmalloc_ro_after_init_register(start, stop);
  return 0;
}
