// Density: resident pool bytes / requested bytes for allocations of uniformly random size
// in [8, 512] (fixed seed). Every block is written in full, so each used page is resident.
// Counters:
//   mapped_ratio      stats.mapped_bytes / requested (includes the unused tail of the last
//                     area, which is mapped but never touched);
//   rss_ratio         Rss of the pool's areas (/proc/self/smaps) / requested;
//   rss_ratio_slack   (Rss - one area) / requested: the target's "plus one area of slack";
//   jemalloc_classes  sum(nallocx(size)) / requested: jemalloc's size-class rounding alone,
//                     for reference (its real footprint adds slabs and metadata).
// BM_Density/<MiB>/0: allocations only. BM_Density/<MiB>/1: then free a random half and
// allocate the same number of bytes again (reuse through the exact-size free lists).
#include <jemalloc/jemalloc.h>

#include <algorithm>
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

// Sum of the Rss of every mapping named for `pool_name` in /proc/self/smaps, in bytes.
size_t PoolRss(const std::string& pool_name) {
  std::ifstream smaps("/proc/self/smaps");
  const std::string tag = "pmalloc:" + pool_name + " ";
  std::string line;
  bool in_pool = false;
  size_t kib = 0;
  while (std::getline(smaps, line)) {
    // Mapping header lines start with "start-end"; field lines with "Name:".
    const std::string first = line.substr(0, line.find(' '));
    if (first.find('-') != std::string::npos && first.find(':') == std::string::npos) {
      in_pool = (line + " ").find(tag) != std::string::npos;
      continue;
    }
    if (in_pool && line.rfind("Rss:", 0) == 0) kib += std::stoul(line.substr(4));
  }
  return kib << 10;
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
    const size_t rss = PoolRss(name);
    mapped_ratio = static_cast<double>(st.mapped_bytes) / requested;
    rss_ratio = static_cast<double>(rss) / requested;
    rss_slack = static_cast<double>(rss > kRefill ? rss - kRefill : 0) / requested;
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
