/* A second translation unit of the test executable: its __ro_after_init variables share the
 * executable's section (one registration per module). */
#include <pmalloc/compat/cache.h>

static long second_value __ro_after_init = 1;
long second_plain = 1;

void second_set(long v) { second_value = v; }
long second_get(void) { return second_value; }
const void *second_address(void) { return &second_value; }
