// Per-allocation time, 16..4096 bytes: pmalloc (one pool) vs jemalloc vs glibc.
//   BM_AllocBatch: a batch of kBatch allocations is timed (manual time), then freed
//                  untimed. Steady state: every allocator reuses the previous batch's blocks.
//   BM_AllocFree:  alloc immediately followed by free, kBatch pairs per iteration.
// Every block gets one byte written so neither loop can be optimised away. Reported time
// is per batch of kBatch = 1000 operations (so it reads as ps per operation... divide by
// 1000 for ns); items_per_second is per operation.
#include <chrono>
#include <vector>

#include "allocators.h"
#include "benchmark/benchmark.h"

namespace pmalloc_bench {
namespace {

constexpr int kBatch = 1000;

template <class A>
void BM_AllocBatch(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  A alloc("bench-batch");
  std::vector<void*> blocks(kBatch);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kBatch; ++i) {
      char* p = static_cast<char*>(alloc.Alloc(size));
      *p = 1;
      blocks[i] = p;
    }
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    for (int i = kBatch - 1; i >= 0; --i) alloc.Free(blocks[i], size);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

template <class A>
void BM_AllocFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  A alloc("bench-pair");
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      char* p = static_cast<char*>(alloc.Alloc(size));
      *p = 1;
      benchmark::DoNotOptimize(p);
      alloc.Free(p, size);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// One iteration is kBatch operations in both benchmarks: the reported time is per batch,
// items_per_second counts operations; run_bench.sh prints ns per operation.
#define SIZES RangeMultiplier(4)->Range(16, 4096)
BENCHMARK_TEMPLATE(BM_AllocBatch, PmallocPool)->SIZES->UseManualTime();
BENCHMARK_TEMPLATE(BM_AllocBatch, Jemalloc)->SIZES->UseManualTime();
BENCHMARK_TEMPLATE(BM_AllocBatch, Glibc)->SIZES->UseManualTime();
BENCHMARK_TEMPLATE(BM_AllocFree, PmallocPool)->SIZES;
BENCHMARK_TEMPLATE(BM_AllocFree, Jemalloc)->SIZES;
BENCHMARK_TEMPLATE(BM_AllocFree, Glibc)->SIZES;
#undef SIZES

}  // namespace
}  // namespace pmalloc_bench
