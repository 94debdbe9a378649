// Cost of a write-rare update of a protected pool (docs/write-rare.md) against the naive
// window a program would write without it: mprotect(PROT_READ|PROT_WRITE) of the page, the
// store, mprotect(PROT_READ) — which leaves the page writable for every thread meanwhile.
// Both write the same kind of page: an allocation of a protected pool (a read-only
// MAP_SHARED memfd page), write-rare for BM_Wr*, plain for BM_Window*.
//
// Arguments: bytes copied (memcpy). tests/perf/write_rare_bench.sh prints the ratios.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "benchmark/benchmark.h"
#include "pmalloc/pmalloc.h"

namespace {

constexpr size_t kBlock = 8192;

// A protected pool holding one page-aligned block of kBlock bytes.
struct Target {
  explicit Target(unsigned flags) {
    pool = pmalloc_create_pool(flags != 0 ? "bench-wr" : "bench-window", 0, 12,
                               PMALLOC_POOL_MANUAL | flags);
    block = static_cast<unsigned char*>(pzalloc(pool, kBlock));
    ok = block != nullptr && pmalloc_protect_pool(pool) == 0;
  }
  pmalloc_pool* pool;
  unsigned char* block;
  bool ok;
};

void BM_WrMemcpy(benchmark::State& state) {
  static Target t(PMALLOC_POOL_WRITE_RARE);
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<unsigned char> src(n, 0x5a);
  if (!t.ok) state.SkipWithError("no write-rare pool");
  for (auto _ : state) {
    ++src[0];
    if (pmalloc_wr_memcpy(t.block, src.data(), n) != 0) state.SkipWithError("wr_memcpy failed");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_WrMemcpy)->Arg(8)->Arg(4096);

void BM_WindowMemcpy(benchmark::State& state) {
  static Target t(0);
  const size_t n = static_cast<size_t>(state.range(0));
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t span = (n + page - 1) / page * page;
  std::vector<unsigned char> src(n, 0x5a);
  if (!t.ok) state.SkipWithError("no pool");
  for (auto _ : state) {
    ++src[0];
    if (mprotect(t.block, span, PROT_READ | PROT_WRITE) != 0) state.SkipWithError("mprotect");
    memcpy(t.block, src.data(), n);
    benchmark::ClobberMemory();
    if (mprotect(t.block, span, PROT_READ) != 0) state.SkipWithError("mprotect");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_WindowMemcpy)->Arg(8)->Arg(4096);

void BM_WrAssignPtr(benchmark::State& state) {
  static Target t(PMALLOC_POOL_WRITE_RARE);
  if (!t.ok) state.SkipWithError("no write-rare pool");
  uintptr_t v = 0;
  for (auto _ : state) {
    v += 8;
    if (pmalloc_wr_assign_ptr(t.block + 64, reinterpret_cast<void*>(v)) != 0) {
      state.SkipWithError("wr_assign_ptr failed");
    }
  }
}
BENCHMARK(BM_WrAssignPtr);

void BM_WindowAssignPtr(benchmark::State& state) {
  static Target t(0);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  if (!t.ok) state.SkipWithError("no pool");
  uintptr_t v = 0;
  for (auto _ : state) {
    v += 8;
    if (mprotect(t.block, page, PROT_READ | PROT_WRITE) != 0) state.SkipWithError("mprotect");
    __atomic_store_n(reinterpret_cast<uintptr_t*>(t.block + 64), v, __ATOMIC_RELEASE);
    if (mprotect(t.block, page, PROT_READ) != 0) state.SkipWithError("mprotect");
  }
}
BENCHMARK(BM_WindowAssignPtr);

}  // namespace
