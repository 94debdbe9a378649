/* For the programs that hand pmalloc a pointer into a pool that was destroyed since. */
#ifndef PMALLOC_TESTS_MISUSE_DESTROYED_POOL_H_
#define PMALLOC_TESTS_MISUSE_DESTROYED_POOL_H_

#include <pmalloc/pmalloc.h>
#include <stdio.h>

/* Prints "addr=<p>" before the program dies: run_misuse.sh puts it into the expected line. */
static inline void say_addr(const void *p) {
  printf("addr=%p\n", p);
  fflush(stdout);
}

/* A block of a pool "misuse", freed, then the pool destroyed; its address is said. */
static inline void *destroyed_pool_block(void) {
  struct pmalloc_pool *pool = pmalloc_create_pool("misuse", 0, 0, 0);
  void *p = pmalloc(pool, 64);
  pfree(pool, p);
  pmalloc_destroy_pool(pool);
  say_addr(p);
  return p;
}

#endif /* PMALLOC_TESTS_MISUSE_DESTROYED_POOL_H_ */
