/* realloc() (the libc face) of a pointer into a pool that was destroyed since. */
#include <pmalloc/pmalloc.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  struct pmalloc_pool *pool = pmalloc_create_pool("misuse", 0, 0, 0);
  void *p = pmalloc(pool, 64);
  pfree(pool, p);
  pmalloc_destroy_pool(pool);
  printf("addr=%p\n", p);
  fflush(stdout);
  void *q = realloc(p, 128);
  printf("not refused: %p\n", q);
  return 0;
}
