// A process for pmalloc-inspect to look at (tests/tools/CMakeLists.txt). Argument: which
// pools to make. "protected": a locked pool; "sealed": a locked and sealed pool; "writable":
// an unlocked pool with data; "mixed": one locked pool and one writable; "none": no pool.
// Prints "ready" once its pools are in place, then waits until stdin closes.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pmalloc/pmalloc.h"

namespace {

pmalloc_pool* Filled(const char* name, unsigned flags) {
  pmalloc_pool* pool = pmalloc_create_pool(name, 0, 0, flags);
  if (pool == nullptr) return nullptr;
  for (int i = 0; i < 100; ++i) {
    char* p = static_cast<char*>(pmalloc(pool, 1000));
    if (p == nullptr) return nullptr;
    memset(p, 'x', 1000);
  }
  return pool;
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "none";
  if (strcmp(mode, "protected") == 0 || strcmp(mode, "mixed") == 0) {
    pmalloc_pool* pool = Filled("inspect-protected", PMALLOC_POOL_MANUAL);
    if (pool == nullptr || pmalloc_protect_pool(pool) != 0) return perror("protect"), 1;
  }
  if (strcmp(mode, "sealed") == 0) {
    pmalloc_pool* pool = Filled("inspect-sealed", PMALLOC_POOL_MANUAL);
    if (pool == nullptr || pmalloc_protect_pool(pool) != 0 || pmalloc_seal_pool(pool) != 0) {
      return perror("seal"), 1;
    }
  }
  if (strcmp(mode, "writable") == 0 || strcmp(mode, "mixed") == 0) {
    if (Filled("inspect-writable", PMALLOC_POOL_MANUAL) == nullptr) return perror("pool"), 1;
  }
  printf("ready\n");
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  return 0;
}
