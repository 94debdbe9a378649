/* Reads a shared object's exported __ro_after_init variable directly (position-dependent
 * access: a copy relocation). Expected to die at start-up with pmalloc's message. */
#include <stdio.h>

extern int ro_exported;

int main(void) {
  printf("not refused: ro_exported = %d\n", ro_exported);
  return 0;
}
