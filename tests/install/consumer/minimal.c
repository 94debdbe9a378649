/* The minimal C example of docs/pools.md: a pool, an allocation, protect, read. */
#include <pmalloc/pmalloc.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  struct pmalloc_pool *pool = pmalloc_create_pool("config", 0, 0, 0);
  if (pool == NULL) return perror("pmalloc_create_pool"), 1;
  char *greeting = pstrdup(pool, "hello, locked world");
  if (greeting == NULL || pmalloc_protect_pool(pool) != 0) return perror("pmalloc"), 1;
  /* greeting[0] = 'H';  would now die with SIGSEGV */
  printf("%s (protected: %d)\n", greeting, pmalloc_is_protected(greeting));
  return strcmp(greeting, "hello, locked world") == 0 && pmalloc_is_protected(greeting) ? 0 : 1;
}
