/* A shared object with a __ro_after_init variable, linked into ro_after_init_test. Its own
 * constructor (from cache.h) registers its section, separately from the executable's. */
#include <pmalloc/compat/cache.h>

static int module_value __ro_after_init = 42;
static int ro_module_plain = 7; /* ordinary data of the same module: stays writable */

__attribute__((visibility("default"))) int ro_module_get(void) { return module_value; }
__attribute__((visibility("default"))) void ro_module_set(int v) { module_value = v; }
__attribute__((visibility("default"))) const void *ro_module_address(void) { return &module_value; }
__attribute__((visibility("default"))) void ro_module_plain_set(int v) { ro_module_plain = v; }
__attribute__((visibility("default"))) const void *ro_module_plain_address(void) {
  return &ro_module_plain;
}
