/* An exported __ro_after_init variable that ro_copy_relocated.c reads directly: the executable
 * gets a copy relocation, and registration must refuse to run (see cache.h). */
#include <pmalloc/compat/cache.h>

__attribute__((visibility("default"))) int ro_exported __ro_after_init = 1;
