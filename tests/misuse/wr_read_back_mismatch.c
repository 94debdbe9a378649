/* A write-rare update whose read-back differs: the program replaced the protected page of
 * its write-rare pool by an anonymous one (the pool is not sealed), so the pwrite into the
 * pool's memfd does not show through the object's address. */
#include <pmalloc/pmalloc.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

int main(void) {
  struct pmalloc_pool *pool = pmalloc_create_pool("misuse", 0, 0, PMALLOC_POOL_WRITE_RARE);
  uint64_t *p = pzalloc(pool, 64);
  if (p == NULL || pmalloc_protect_pool(pool) != 0) return 2;
  void *page = (void *)((uintptr_t)p & ~(uintptr_t)4095);
  if (mmap(page, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
    return 3;
  }
  printf("addr=%p\n", (void *)p);
  fflush(stdout);
  const uint64_t v = 1;
  pmalloc_wr_memcpy(p, &v, sizeof(v));
  return 0;
}
