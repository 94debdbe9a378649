// A pool under churn behaves like a general-purpose allocator before it is protected: freed
// neighbours merge into larger blocks, small freed blocks serve larger requests instead of
// new areas, memory stays bounded when request sizes keep changing, a wholly free area gives
// its pages back, and a double free of a merged block is still named a double free.
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

pmalloc_stats Stats(pmalloc_pool* p) {
  pmalloc_stats s{};
  EXPECT_EQ(pmalloc_pool_stats(p, &s), 0);
  return s;
}

// Resident pages among the pages of `blocks` (each `size` bytes), by mincore.
size_t ResidentPages(const std::vector<void*>& blocks, size_t size) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  std::vector<uintptr_t> pages;
  for (void* b : blocks) {
    const uintptr_t s = reinterpret_cast<uintptr_t>(b);
    for (uintptr_t p = s & ~(page - 1); p < s + size; p += page) pages.push_back(p);
  }
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  size_t resident = 0;
  for (uintptr_t p : pages) {
    unsigned char v = 0;
    EXPECT_EQ(mincore(reinterpret_cast<void*>(p), page, &v), 0);
    resident += v & 1;
  }
  return resident;
}

TEST(PoolChurn, FreedNeighboursMergeIntoOneBlock) {
  pmalloc_pool* pool = pmalloc_create_pool("merge", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pool, nullptr);
  void* a = pmalloc(pool, 2000);
  void* b = pmalloc(pool, 2000);
  void* c = pmalloc(pool, 2000);
  void* guard = pmalloc(pool, 16);
  ASSERT_NE(guard, nullptr);
  pfree(pool, b);
  pfree(pool, a);
  pfree(pool, c);
  // a, b and c are one free block now: a request for all three fits where a was.
  void* big = pmalloc(pool, 6000);
  EXPECT_EQ(big, a);
  EXPECT_GE(pmalloc_usable_size(big), 6000u);
  pfree(pool, big);
  pfree(pool, guard);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(PoolChurn, SmallFreedBlocksServeLargerRequests) {
  pmalloc_pool* pool = pmalloc_create_pool("small", 1 << 16, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pool, nullptr);
  std::vector<void*> small;
  for (int i = 0; i < 16384; ++i) small.push_back(pmalloc(pool, 48));  // 768 KiB
  for (void* p : small) pfree(pool, p);
  const size_t mapped = Stats(pool).mapped_bytes;
  // The same bytes again in blocks no small list holds: the freed ones merge and serve them.
  std::vector<void*> large;
  for (int i = 0; i < 160; ++i) {
    large.push_back(pmalloc(pool, 4000));
    ASSERT_NE(large.back(), nullptr);
    memset(large.back(), i, 4000);
  }
  EXPECT_EQ(Stats(pool).mapped_bytes, mapped);
  for (void* p : large) pfree(pool, p);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(PoolChurn, MemoryStaysBoundedWhenSizesKeepChanging) {
  pmalloc_pool* pool = pmalloc_create_pool("sizes", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pool, nullptr);
  // Each round allocates 256 KiB in blocks of a size never asked for before, then frees
  // them: exact-size reuse alone maps a new 256 KiB per round.
  for (size_t round = 0; round < 400; ++round) {
    const size_t size = 1100 + round * 16;
    std::vector<void*> blocks;
    for (size_t total = 0; total < (size_t{256} << 10); total += size) {
      blocks.push_back(pmalloc(pool, size));
      ASSERT_NE(blocks.back(), nullptr);
      memset(blocks.back(), static_cast<int>(round), size);
    }
    for (void* p : blocks) pfree(pool, p);
  }
  EXPECT_LE(Stats(pool).mapped_bytes, size_t{2} << 20);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(PoolChurn, WhollyFreeAreasGiveTheirPagesBack) {
  pmalloc_pool* pool = pmalloc_create_pool("discard", 1 << 16, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pool, nullptr);
  constexpr size_t kSize = 4096;
  std::vector<void*> blocks;
  for (int i = 0; i < 2048; ++i) {  // 8 MiB over several areas
    blocks.push_back(pmalloc(pool, kSize));
    ASSERT_NE(blocks.back(), nullptr);
    memset(blocks.back(), 0x5a, kSize);
  }
  const size_t before = ResidentPages(blocks, kSize);
  ASSERT_GT(before, 2000u);
  for (void* p : blocks) pfree(pool, p);
  EXPECT_LT(ResidentPages(blocks, kSize), before / 10);
  // The memory is reused, and reads back as written, not as stale bytes.
  std::vector<void*> again;
  for (int i = 0; i < 2048; ++i) {
    auto* p = static_cast<unsigned char*>(pmalloc(pool, kSize));
    ASSERT_NE(p, nullptr);
    memset(p, i & 0xff, kSize);
    again.push_back(p);
  }
  for (int i = 0; i < 2048; ++i) {
    const auto* p = static_cast<const unsigned char*>(again[i]);
    ASSERT_EQ(p[0], i & 0xff);
    ASSERT_EQ(p[kSize - 1], i & 0xff);
  }
  for (void* p : again) pfree(pool, p);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(PoolChurn, ZeroedBlocksFromMergedMemoryAreZero) {
  pmalloc_pool* pool = pmalloc_create_pool("zero", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pool, nullptr);
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) {
    blocks.push_back(pmalloc(pool, 1500));
    memset(blocks.back(), 0xff, 1500);
  }
  void* guard = pmalloc(pool, 16);
  for (void* p : blocks) pfree(pool, p);
  for (int i = 0; i < 20; ++i) {
    auto* z = static_cast<unsigned char*>(pzalloc(pool, 4000));
    ASSERT_NE(z, nullptr);
    for (size_t k = 0; k < 4000; ++k) ASSERT_EQ(z[k], 0) << "byte " << k;
  }
  pfree(pool, guard);
}

TEST(PoolChurn, DoubleFreeOfAMergedBlockIsNamed) {
  pmalloc_pool* pool = pmalloc_create_pool("merged", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pool, nullptr);
  void* a = pmalloc(pool, 2000);
  void* b = pmalloc(pool, 2000);
  void* guard = pmalloc(pool, 16);
  ASSERT_NE(guard, nullptr);
  pfree(pool, a);
  pfree(pool, b);  // merges into a's free block
  EXPECT_DEATH(pfree(pool, b), "pmalloc: pfree\\(\\): double free of 0x[0-9a-f]+ in pool 'merged'");
  EXPECT_DEATH(pfree(pool, static_cast<char*>(b) + 8), "invalid pointer|double free");
}

TEST(PoolChurn, ProtectDropsFreeRangesAndNothingIsReusedAfterIt) {
  pmalloc_pool* pool = pmalloc_create_pool("ranges", 0, 0, PMALLOC_POOL_GROWABLE);
  ASSERT_NE(pool, nullptr);
  std::vector<void*> blocks;
  for (int i = 0; i < 32; ++i) blocks.push_back(pmalloc(pool, 3000));
  void* keep = pmalloc(pool, 16);
  for (void* p : blocks) pfree(pool, p);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  void* fresh = pmalloc(pool, 3000);  // from a new area, never from protected memory
  ASSERT_NE(fresh, nullptr);
  for (void* p : blocks) {
    EXPECT_FALSE(fresh >= p && fresh < static_cast<char*>(p) + 3000);
  }
  memset(fresh, 1, 3000);
  pfree(pool, fresh);
  pfree(pool, keep);
}

// Threads allocate, fill, check and free blocks of mixed sizes in one pool, so that frees
// merge with neighbours another thread freed and merged blocks are split again.
TEST(PoolChurn, ThreadsMergeAndSplitWithoutHandingOutLiveMemory) {
  pmalloc_pool* pool = pmalloc_create_pool("churn-threads", 1 << 16, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pool, nullptr);
  constexpr int kThreads = 3;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([pool, t] {
      std::mt19937 rng(t + 1);
      struct Live {
        unsigned char* p;
        size_t size;
      };
      std::vector<Live> live;
      for (int i = 0; i < 30000; ++i) {
        if (live.size() > 200 || (!live.empty() && rng() % 3 == 0)) {
          const size_t k = rng() % live.size();
          const Live b = live[k];
          ASSERT_EQ(b.p[0], t + 1);
          ASSERT_EQ(b.p[b.size - 1], t + 1);
          pfree(pool, b.p);
          live[k] = live.back();
          live.pop_back();
          continue;
        }
        const size_t size = rng() % 4 == 0 ? 1025 + rng() % 7000 : 8 + rng() % 1000;
        auto* p = static_cast<unsigned char*>(pmalloc(pool, size));
        ASSERT_NE(p, nullptr);
        memset(p, t + 1, size);
        live.push_back({p, size});
      }
      for (const Live& b : live) pfree(pool, b.p);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

}  // namespace
