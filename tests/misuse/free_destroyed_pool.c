/* free() (the libc face) of a pointer into a pool that was destroyed since. */
#include <stdlib.h>

#include "destroyed_pool.h"

int main(void) {
  free(destroyed_pool_block());
  return 0;
}
