/* A module for dlopen with a __ro_after_init variable (see ro_after_init_test.cc). */
#include <pmalloc/compat/cache.h>

static int dl_value __ro_after_init = 1;

__attribute__((visibility("default"))) void ro_dl_set(int v) { dl_value = v; }
__attribute__((visibility("default"))) const int *ro_dl_address(void) { return &dl_value; }
