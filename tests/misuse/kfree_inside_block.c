/* compat: kfree of a pointer inside a GFP_LOCKABLE object (not its start). */
#include <pmalloc/compat/slab.h>
#include <stdio.h>

int main(void) {
  char *p = kmalloc(64, GFP_LOCKABLE);
  printf("addr=%p\n", (void *)(p + 16));
  fflush(stdout);
  kfree(p + 16);
  return 0;
}
