/* Loaded by startup_probe with dlopen during start-up: its allocation's site must name
 * this module (the module table is rebuilt for an address it did not know). */
#include <stdlib.h>

__attribute__((noinline, visibility("default"))) char *probe_dl_alloc(void) {
  char *p = malloc(72);
  __asm__ volatile("" ::"r"(p) : "memory");
  return p;
}
