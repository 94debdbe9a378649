// Not linked with libpmalloc: finds the pool API with dlsym, so it only works when the
// library is preloaded. Shows that preloaded use gets fault reports too.
#include <dlfcn.h>

#include <cstddef>

namespace {

using CreatePool = void* (*)(const char*, size_t, unsigned, unsigned);
using Alloc = void* (*)(void*, size_t);
using Protect = int (*)(void*);

__attribute__((noinline)) void PreloadedScribble(char* p) {
  *reinterpret_cast<volatile char*>(p) = 1;
  asm volatile("" ::: "memory");
}

}  // namespace

int main() {
  auto create = reinterpret_cast<CreatePool>(dlsym(RTLD_DEFAULT, "pmalloc_create_pool"));
  auto alloc = reinterpret_cast<Alloc>(dlsym(RTLD_DEFAULT, "pmalloc"));
  auto protect = reinterpret_cast<Protect>(dlsym(RTLD_DEFAULT, "pmalloc_protect_pool"));
  if (create == nullptr || alloc == nullptr || protect == nullptr) return 3;
  void* pool = create("preloaded", 0, 0, 2 /* PMALLOC_POOL_MANUAL */);
  char* p = pool == nullptr ? nullptr : static_cast<char*>(alloc(pool, 24));
  if (p == nullptr || protect(pool) != 0) return 4;
  PreloadedScribble(p);
  return 0;
}
