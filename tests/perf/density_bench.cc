// Density: resident pool bytes / requested bytes for allocations of uniformly random size
// in [8, 512] (fixed seed). Every block is written in full, so each used page is resident.
// Counters:
//   mapped_ratio      stats.mapped_bytes / requested (includes the unused tail of the last
//                     area, which is mapped but never touched);
//   rss_ratio         Rss of the pool's areas (/proc/self/smaps) / requested;
//   rss_ratio_slack   (Rss - the largest area) / requested: the target's "plus one area of
//                     slack" (areas grow with the pool up to 1 MiB);
//   jemalloc_classes  sum(nallocx(size)) / requested: jemalloc's size-class rounding alone,
//                     for reference (its real footprint adds slabs and metadata).
// BM_Density/<MiB>/0: allocations only. BM_Density/<MiB>/1: then free a random half and
// allocate the same number of bytes again (reuse through the exact-size free lists).
#include <jemalloc/jemalloc.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc_bench {
namespace {

constexpr size_t kRefill = size_t{64} << 10;

struct PoolMemory {
  size_t rss = 0;           // bytes resident in the pool's mappings
  size_t largest_area = 0;  // size of its largest mapping (one area)
};

// Rss of every mapping of `pool` in /proc/self/smaps. Mappings are found by address
// (pmalloc_pool_of of their first byte), not by name: writable areas are anonymous and
// named only where the kernel has CONFIG_ANON_VMA_NAME. Each area is its own mapping (the
// reserved, inaccessible window separates areas).
PoolMemory PoolRss(pmalloc_pool* pool) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_pool = false;
  PoolMemory m;
  while (std::getline(smaps, line)) {
    // Mapping header lines start with "start-end"; field lines with "Name:".
    const std::string first = line.substr(0, line.find(' '));
    if (first.find('-') != std::string::npos && first.find(':') == std::string::npos) {
      const uintptr_t start = std::stoull(first.substr(0, first.find('-')), nullptr, 16);
      const uintptr_t end = std::stoull(first.substr(first.find('-') + 1), nullptr, 16);
      in_pool = pmalloc_pool_of(reinterpret_cast<void*>(start)) == pool;
      if (in_pool) m.largest_area = std::max<size_t>(m.largest_area, end - start);
      continue;
    }
    if (in_pool && line.rfind("Rss:", 0) == 0) m.rss += std::stoul(line.substr(4)) << 10;
  }
  return m;
}

void BM_Density(benchmark::State& state) {
  const size_t target = static_cast<size_t>(state.range(0)) << 20;
  const bool churn = state.range(1) != 0;
  const std::string name = "bench-density";
  double mapped_ratio = 0, rss_ratio = 0, rss_slack = 0, je_ratio = 0;
  for (auto _ : state) {
    pmalloc_pool* pool = pmalloc_create_pool(name.c_str(), kRefill, 0, PMALLOC_POOL_MANUAL);
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<size_t> dist(8, 512);
    struct Block {
      void* p;
      size_t size;
    };
    std::vector<Block> blocks;
    size_t requested = 0;
    size_t je_bytes = 0;
    auto fill = [&](size_t until) {
      while (requested < until) {
        const size_t size = dist(rng);
        void* p = pmalloc(pool, size);
        memset(p, 0x5a, size);
        blocks.push_back({p, size});
        requested += size;
        je_bytes += nallocx(size, 0);
      }
    };
    fill(target);
    if (churn) {
      std::shuffle(blocks.begin(), blocks.end(), rng);
      const size_t half = blocks.size() / 2;
      for (size_t i = half; i < blocks.size(); ++i) {
        pfree(pool, blocks[i].p);
        requested -= blocks[i].size;
        je_bytes -= nallocx(blocks[i].size, 0);
      }
      blocks.resize(half);
      fill(target);
    }
    pmalloc_stats st{};
    pmalloc_pool_stats(pool, &st);
    const PoolMemory mem = PoolRss(pool);
    if (mem.rss == 0) {
      state.SkipWithError("no resident pool mapping found in /proc/self/smaps");
      break;
    }
    const size_t rss = mem.rss;
    mapped_ratio = static_cast<double>(st.mapped_bytes) / requested;
    rss_ratio = static_cast<double>(rss) / requested;
    rss_slack =
        static_cast<double>(rss > mem.largest_area ? rss - mem.largest_area : 0) / requested;
    je_ratio = static_cast<double>(je_bytes) / requested;
    for (const Block& b : blocks) pfree(pool, b.p);
    pmalloc_destroy_pool(pool);
  }
  state.counters["mapped_ratio"] = mapped_ratio;
  state.counters["rss_ratio"] = rss_ratio;
  state.counters["rss_ratio_slack"] = rss_slack;
  state.counters["jemalloc_classes"] = je_ratio;
}

BENCHMARK(BM_Density)->ArgsProduct({{1, 64}, {0, 1}})->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pmalloc_bench
