// Cost of the compat layer over what it wraps: kmalloc/kfree(GFP_KERNEL) against
// malloc/free, and kmalloc/kfree(GFP_LOCKABLE) against pmalloc/pfree on the default pool.
// Not a test; run: build/default/tests/compat/compat_kmalloc_bench --benchmark_repetitions=5
#include <stdlib.h>

#include "benchmark/benchmark.h"
#include "pmalloc/compat/slab.h"

namespace {

constexpr size_t kSize = 64;

void BM_MallocFree(benchmark::State& state) {
  for (auto _ : state) {
    void* p = malloc(kSize);
    benchmark::DoNotOptimize(p);
    free(p);
  }
}
BENCHMARK(BM_MallocFree);

void BM_KmallocKfreeKernel(benchmark::State& state) {
  for (auto _ : state) {
    void* p = kmalloc(kSize, GFP_KERNEL);
    benchmark::DoNotOptimize(p);
    kfree(p);
  }
}
BENCHMARK(BM_KmallocKfreeKernel);

void BM_PmallocPfreeDefaultPool(benchmark::State& state) {
  pmalloc_pool* pool = pmalloc_default_pool();
  for (auto _ : state) {
    void* p = pmalloc(pool, kSize);
    benchmark::DoNotOptimize(p);
    pfree(pool, p);
  }
}
BENCHMARK(BM_PmallocPfreeDefaultPool);

void BM_KmallocKfreeLockable(benchmark::State& state) {
  for (auto _ : state) {
    void* p = kmalloc(kSize, GFP_LOCKABLE);
    benchmark::DoNotOptimize(p);
    kfree(p);
  }
}
BENCHMARK(BM_KmallocKfreeLockable);

}  // namespace

BENCHMARK_MAIN();
