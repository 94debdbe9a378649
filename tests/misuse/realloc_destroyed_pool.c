/* realloc() (the libc face) of a pointer into a pool that was destroyed since. */
#include <stdio.h>
#include <stdlib.h>

#include "destroyed_pool.h"

int main(void) {
  void *q = realloc(destroyed_pool_block(), 128);
  printf("not refused: %p\n", q);
  return 0;
}
