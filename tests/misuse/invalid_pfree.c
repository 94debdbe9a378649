/* pfree of a pointer inside a live block (not its start). */
#include <pmalloc/pmalloc.h>
#include <stdio.h>

int main(void) {
  struct pmalloc_pool *pool = pmalloc_create_pool("misuse", 0, 0, 0);
  char *p = pmalloc(pool, 64);
  printf("addr=%p\n", (void *)(p + 16));
  fflush(stdout);
  pfree(pool, p + 16);
  return 0;
}
