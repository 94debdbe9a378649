// The allocators the benchmarks compare, behind one tiny interface:
//   pmalloc  — pmalloc(pool)/pfree on one MANUAL pool (what the library offers);
//   jemalloc — mallocx/dallocx, jemalloc's own entry points (the same code as its malloc);
//   glibc    — __libc_malloc/__libc_free, so the comparison stays glibc's even when a
//              preloaded malloc (pmalloc's own LD_PRELOAD face) replaces plain malloc.
#ifndef PMALLOC_TESTS_PERF_ALLOCATORS_H_
#define PMALLOC_TESTS_PERF_ALLOCATORS_H_

#include <jemalloc/jemalloc.h>

#include <cstddef>
#include <cstdlib>

#include "pmalloc/pmalloc.h"

extern "C" void* __libc_malloc(size_t size);
extern "C" void __libc_free(void* p);

namespace pmalloc_bench {

struct PmallocPool {
  static constexpr const char* kName = "pmalloc";
  explicit PmallocPool(const char* name)
      : pool(pmalloc_create_pool(name, 0, 0, PMALLOC_POOL_MANUAL)) {
    if (pool == nullptr) std::abort();
  }
  ~PmallocPool() { pmalloc_destroy_pool(pool); }
  void* Alloc(size_t size) { return pmalloc(pool, size); }
  void Free(void* p, size_t) { pfree(pool, p); }
  pmalloc_pool* pool;
};

struct Jemalloc {
  static constexpr const char* kName = "jemalloc";
  explicit Jemalloc(const char*) {}
  void* Alloc(size_t size) { return mallocx(size, 0); }
  void Free(void* p, size_t) { dallocx(p, 0); }
};

struct Glibc {
  static constexpr const char* kName = "glibc";
  explicit Glibc(const char*) {}
  void* Alloc(size_t size) { return __libc_malloc(size); }
  void Free(void* p, size_t) { __libc_free(p); }
};

}  // namespace pmalloc_bench

#endif  // PMALLOC_TESTS_PERF_ALLOCATORS_H_
