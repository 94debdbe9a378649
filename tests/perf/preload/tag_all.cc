// Preloaded after libpmalloc.so (LD_PRELOAD="libpmalloc.so libtag_all.so"), this puts every
// thread of an unmodified program in one pool's scope, as start-up tagging of a whole
// program does: the main thread enters the scope in a constructor, and every thread started
// with pthread_create enters it before its start routine runs. Used by
// tests/perf/tagged_churn_bench.sh and the tagged churn tests; public API only.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "pmalloc/pmalloc.h"

namespace {

pmalloc_pool* pool = nullptr;

struct Start {
  void* (*fn)(void*);
  void* arg;
};

void* Trampoline(void* raw) {
  const Start start = *static_cast<Start*>(raw);
  free(raw);
  pmalloc_scope_enter(pool);
  return start.fn(start.arg);
}

__attribute__((constructor)) void EnterScope() {
  pool = pmalloc_create_pool("tag_all", 0, 0, PMALLOC_POOL_GROWABLE);
  if (pool == nullptr) {
    perror("tag_all: pmalloc_create_pool");
    abort();
  }
  pmalloc_scope_enter(pool);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int pthread_create(pthread_t* thread,
                                                                     const pthread_attr_t* attr,
                                                                     void* (*fn)(void*),
                                                                     void* arg) {
  using Create = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  static const Create next = reinterpret_cast<Create>(dlsym(RTLD_NEXT, "pthread_create"));
  auto* start = static_cast<Start*>(malloc(sizeof(Start)));
  if (start == nullptr) return EAGAIN;
  *start = {fn, arg};
  const int rc = next(thread, attr, Trampoline, start);
  if (rc != 0) free(start);
  return rc;
}
