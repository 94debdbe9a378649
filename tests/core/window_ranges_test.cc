// The pool window's address ranges (core/window.cc), run under PMALLOC_CONF=window:1G by
// CTest (tests/core/CMakeLists.txt) so that a few thousand pools go round the window.
#include <errno.h>

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

// Address ranges of destroyed pools are merged again: after many more pools than the
// window holds at once, nothing is live and one large area fits (issue 9.5).
TEST(Window, DestroyedRangesCoalesce) {
  for (int i = 0; i < 20000; ++i) {
    pmalloc_pool* pool = pmalloc_create_pool("cycle", 0, 0, 0);
    ASSERT_NE(pool, nullptr) << "cycle " << i;
    void* p = pmalloc(pool, 100);
    ASSERT_NE(p, nullptr) << "cycle " << i << " errno " << errno;
    pfree(pool, p);
    ASSERT_EQ(pmalloc_destroy_pool(pool), 0);
  }
  pmalloc_pool* big = pmalloc_create_pool("big", 0, 0, 0);
  void* p = pmalloc(big, size_t{256} << 20);
  EXPECT_NE(p, nullptr) << "errno " << errno;
  if (p != nullptr) pfree(big, p);
  EXPECT_EQ(pmalloc_destroy_pool(big), 0);
}

// Freed ranges merge with their neighbours whichever is freed first: every other pool goes,
// then the rest, round after round, and one large area fits at the end.
TEST(Window, InterleavedDestroyOrderCoalesces) {
  for (int round = 0; round < 20; ++round) {
    std::vector<pmalloc_pool*> pools;
    std::vector<void*> blocks;
    for (int i = 0; i < 600; ++i) {
      pmalloc_pool* pool = pmalloc_create_pool("interleaved", 0, 0, 0);
      ASSERT_NE(pool, nullptr);
      void* p = pmalloc(pool, 1000);
      ASSERT_NE(p, nullptr) << "round " << round << " pool " << i;
      pools.push_back(pool);
      blocks.push_back(p);
    }
    for (size_t start : {size_t{1}, size_t{0}}) {
      for (size_t i = start; i < pools.size(); i += 2) {
        pfree(pools[i], blocks[i]);
        ASSERT_EQ(pmalloc_destroy_pool(pools[i]), 0);
      }
    }
  }
  pmalloc_pool* big = pmalloc_create_pool("big", 0, 0, 0);
  void* p = pmalloc(big, size_t{256} << 20);
  EXPECT_NE(p, nullptr) << "errno " << errno;
  if (p != nullptr) pfree(big, p);
  EXPECT_EQ(pmalloc_destroy_pool(big), 0);
}

// A destroyed pool's addresses are not handed out again while never-used space is left: a
// stale pointer keeps faulting (pmalloc_pool_of says no pool) after new pools come.
TEST(Window, DestroyedRangeIsReusedLate) {
  pmalloc_pool* old_pool = pmalloc_create_pool("old", 0, 0, 0);
  void* stale = pmalloc(old_pool, 64);
  ASSERT_NE(stale, nullptr);
  pfree(old_pool, stale);
  ASSERT_EQ(pmalloc_destroy_pool(old_pool), 0);
  std::vector<pmalloc_pool*> pools;
  for (int i = 0; i < 100; ++i) {
    pmalloc_pool* pool = pmalloc_create_pool("new", 0, 0, 0);
    ASSERT_NE(pmalloc(pool, 64), nullptr);
    pools.push_back(pool);
  }
  EXPECT_EQ(pmalloc_pool_of(stale), nullptr);
}

}  // namespace
