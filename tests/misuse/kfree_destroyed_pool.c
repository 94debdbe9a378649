/* compat: kfree of an object of a pool that was destroyed since (its address is in the pool
 * window but in no live area, so kfree hands it to free(), which refuses it). */
#include <pmalloc/compat/gfp.h>
#include <pmalloc/compat/slab.h>

#include "destroyed_pool.h"

int main(void) {
  struct pmalloc_pool *pool = pmalloc_create_pool("misuse", 0, 0, 0);
  gfp_t zone = pmalloc_gfp_zone(pool);
  void *p = kmalloc(64, GFP_KERNEL | zone);
  kfree(p);
  pmalloc_gfp_zone_release(zone);
  pmalloc_destroy_pool(pool);
  say_addr(p);
  kfree(p);
  return 0;
}
