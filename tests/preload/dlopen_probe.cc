// dlopen of libpmalloc.so after start-up, from a program that is neither linked with it nor
// preloaded. Documented outcome: the pool API works; the libc face is not the process's
// allocator (malloc was bound to glibc at start-up), so scopes tag nothing. If the loader
// refuses the library (e.g. no static TLS left for initial-exec TLS), dlopen must fail
// cleanly with a message and the process carries on. Prints what happened; exit 0 when
// either outcome is clean.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pmalloc_pool;

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  void* before = malloc(64);  // glibc memory from before the load
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* err = dlerror();
    printf("dlopen failed cleanly: %s\n", err == nullptr ? "(no message)" : err);
    free(before);
    return err == nullptr ? 1 : 0;
  }
  auto create = reinterpret_cast<pmalloc_pool* (*)(const char*, size_t, unsigned short, unsigned)>(
      dlsym(h, "pmalloc_create_pool"));
  auto alloc = reinterpret_cast<void* (*)(pmalloc_pool*, size_t)>(dlsym(h, "pmalloc"));
  auto pfree = reinterpret_cast<void (*)(pmalloc_pool*, const void*)>(dlsym(h, "pfree"));
  auto pool_of = reinterpret_cast<pmalloc_pool* (*)(const void*)>(dlsym(h, "pmalloc_pool_of"));
  auto enter = reinterpret_cast<pmalloc_pool* (*)(pmalloc_pool*)>(dlsym(h, "pmalloc_scope_enter"));
  auto exit_scope = reinterpret_cast<void (*)(pmalloc_pool*)>(dlsym(h, "pmalloc_scope_exit"));
  auto protect = reinterpret_cast<int (*)(pmalloc_pool*)>(dlsym(h, "pmalloc_protect_pool"));
  if (!create || !alloc || !pfree || !pool_of || !enter || !exit_scope || !protect) return 1;
  pmalloc_pool* pool = create("late", 0, 0, 0);
  char* p = static_cast<char*>(alloc(pool, 32));
  if (pool == nullptr || p == nullptr || pool_of(p) != pool) return 1;
  strcpy(p, "pool memory after dlopen");
  pmalloc_pool* prev = enter(pool);
  void* m = malloc(100);  // glibc's malloc: the face is not active
  exit_scope(prev);
  const bool face_active = pool_of(m) == pool;
  free(m);
  free(before);
  if (protect(pool) != 0) return 1;
  printf("dlopen works: pool API ok, face active=%d, read back '%s'\n", face_active, p);
  return face_active ? 1 : 0;
}
