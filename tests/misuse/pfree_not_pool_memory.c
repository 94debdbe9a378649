/* pfree of memory that no pool ever allocated (a stack variable). */
#include <pmalloc/pmalloc.h>
#include <stdio.h>

int main(void) {
  struct pmalloc_pool *pool = pmalloc_create_pool("misuse", 0, 0, 0);
  int local = 0;
  printf("addr=%p\n", (void *)&local);
  fflush(stdout);
  pfree(pool, &local);
  return 0;
}
