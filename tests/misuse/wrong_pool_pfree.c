/* A block of one pool freed to another pool. */
#include <pmalloc/pmalloc.h>
#include <stdio.h>

int main(void) {
  struct pmalloc_pool *pool = pmalloc_create_pool("misuse", 0, 0, 0);
  struct pmalloc_pool *other = pmalloc_create_pool("other", 0, 0, 0);
  void *p = pmalloc(pool, 64);
  printf("addr=%p\n", p);
  fflush(stdout);
  pfree(other, p);
  return 0;
}
