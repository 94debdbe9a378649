/* compat: an __ro_after_init section that pmalloc cannot take into the lockdown set (the
 * table of lockdown ranges is full: ENOMEM). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pmalloc/compat/cache.h>
#include <stdio.h>
#include <sys/mman.h>

static char section[2 * 4096] __attribute__((aligned(4096)));

int main(void) {
  char *fill = mmap(NULL, 4096 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (fill == MAP_FAILED) return 2;
  for (int i = 0; i < 4096; ++i) {
    if (pmalloc_register_lockdown_range(fill + (size_t)i * 4096, 4096, "fill") != 0) break;
  }
  char *start = section, *stop = section + 4096;
  Dl_info info = {0};
  const char *module = "?";
  if (dladdr(start, &info) != 0 && info.dli_fname != NULL) module = info.dli_fname;
  printf("start=%p\nstop=%p\nmodule=%s\n", (void *)start, (void *)stop, module);
  fflush(stdout);
  pmalloc_ro_after_init_register(start, stop);
  return 0;
}
