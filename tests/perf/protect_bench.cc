// Protect time for populated pools of 1 MiB .. 1 GiB. pmalloc_protect_pool makes one
// mprotect call per area, so its cost follows the number of areas (and the kernel's
// per-page work), not the number of allocations. References on plain anonymous memory of
// the same size: one mprotect over the whole range, and one mprotect per 4 KiB page (what a
// per-allocation or per-page protector pays).
//
// Arguments: pool MiB, refill KiB (0: the default 64 KiB), allocation size.
// Counters: areas = mprotect calls made by pmalloc_protect_pool; allocs.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "benchmark/benchmark.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc_bench {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_ProtectPool(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  const size_t refill = static_cast<size_t>(state.range(1)) << 10;
  const size_t size = static_cast<size_t>(state.range(2));
  const size_t count = bytes / size;
  std::vector<void*> blocks(count);
  pmalloc_stats st{};
  for (auto _ : state) {
    pmalloc_pool* pool = pmalloc_create_pool("bench-protect", refill, 0, PMALLOC_POOL_MANUAL);
    for (size_t i = 0; i < count; ++i) {
      blocks[i] = pmalloc(pool, size);
      if (blocks[i] == nullptr) {
        state.SkipWithError("pmalloc failed");
        return;
      }
      memset(blocks[i], 0x5a, size);  // populate: the kernel's work grows with present pages
    }
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = pmalloc_protect_pool(pool);
    state.SetIterationTime(Seconds(t0));
    pmalloc_pool_stats(pool, &st);
    for (size_t i = 0; i < count; ++i) pfree(pool, blocks[i]);
    if (rc != 0 || pmalloc_destroy_pool(pool) != 0) {
      state.SkipWithError("protect or destroy failed");
      return;
    }
  }
  state.counters["areas"] = static_cast<double>(st.areas);
  state.counters["allocs"] = static_cast<double>(count);
}

// Reference: plain populated anonymous memory, one mprotect (range(1) == 0) or one per
// page (range(1) == 1).
void BM_MprotectAnon(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  const bool per_page = state.range(1) != 0;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (auto _ : state) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      state.SkipWithError("mmap failed");
      return;
    }
    madvise(p, bytes, MADV_NOHUGEPAGE);  // 4 KiB pages, like pool areas (memfd: no THP)
    memset(p, 0x5a, bytes);
    char* c = static_cast<char*>(p);
    const auto t0 = std::chrono::steady_clock::now();
    if (per_page) {
      for (size_t off = 0; off < bytes; off += page) mprotect(c + off, page, PROT_READ);
    } else {
      mprotect(p, bytes, PROT_READ);
    }
    state.SetIterationTime(Seconds(t0));
    munmap(p, bytes);
  }
  state.counters["mprotect_calls"] = per_page ? static_cast<double>(bytes / page) : 1.0;
}

void PoolArgs(benchmark::internal::Benchmark* b) {
  for (long mib : {1, 16, 256, 1024}) {
    b->Args({mib, 0, 4096});          // default refill: many areas
    b->Args({mib, mib << 10, 4096});  // refill = pool size: one area
  }
  // Same bytes, 64x more allocations: the protect time must not follow.
  b->Args({16, 0, 64});
  b->Args({256, 256 << 10, 64});
}

BENCHMARK(BM_ProtectPool)
    ->Apply(PoolArgs)
    ->UseManualTime()
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprotectAnon)
    ->ArgsProduct({{1, 16, 256, 1024}, {0, 1}})
    ->UseManualTime()
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pmalloc_bench
