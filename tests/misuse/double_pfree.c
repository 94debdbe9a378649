/* pfree of the same block twice. */
#include <pmalloc/pmalloc.h>
#include <stdio.h>

int main(void) {
  struct pmalloc_pool *pool = pmalloc_create_pool("misuse", 0, 0, 0);
  void *p = pmalloc(pool, 64);
  pfree(pool, p);
  printf("addr=%p\n", p);
  fflush(stdout);
  pfree(pool, p);
  return 0;
}
