// pmalloc_check_object (pmalloc.h): inside one live allocation, no pool memory, or across
// bounds; and its lock-free reads racing pmalloc/pfree (ObjectCheckRace.*, labelled
// concurrency: the TSan run checks that the block map reads race nothing).
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

class ObjectCheck : public testing::Test {
 protected:
  void SetUp() override {
    pool_ = pmalloc_create_pool("objcheck", 0, 0, PMALLOC_POOL_MANUAL);
    ASSERT_NE(pool_, nullptr);
  }
  void TearDown() override {
    if (pool_ != nullptr) {
      for (void* p : live_) pfree(pool_, p);
      EXPECT_EQ(pmalloc_destroy_pool(pool_), 0);
    }
  }
  char* Alloc(size_t n) {
    void* p = pmalloc(pool_, n);
    EXPECT_NE(p, nullptr);
    live_.push_back(p);
    return static_cast<char*>(p);
  }
  // -1 must come with EFAULT.
  static int Check(const void* p, size_t n) {
    errno = 0;
    const int r = pmalloc_check_object(p, n);
    if (r == -1) {
      EXPECT_EQ(errno, EFAULT);
    }
    return r;
  }

  pmalloc_pool* pool_ = nullptr;
  std::vector<void*> live_;
};

TEST_F(ObjectCheck, InsideOneAllocation) {
  char* p = Alloc(100);
  EXPECT_EQ(Check(p, 100), 1);
  EXPECT_EQ(Check(p + 10, 20), 1);
  EXPECT_EQ(Check(p + 99, 1), 1);
}

TEST_F(ObjectCheck, ExactBoundsAreTheUsableSize) {
  char* p = Alloc(100);
  const size_t usable = pmalloc_usable_size(p);
  ASSERT_GE(usable, 100u);
  EXPECT_EQ(Check(p, usable), 1);
  EXPECT_EQ(Check(p + usable - 1, 1), 1);
}

TEST_F(ObjectCheck, OneBytePastTheEndCrosses) {
  char* p = Alloc(64);
  Alloc(64);  // a neighbour after it
  const size_t usable = pmalloc_usable_size(p);
  EXPECT_EQ(Check(p, usable + 1), -1);
  EXPECT_EQ(Check(p + usable - 1, 2), -1);
}

TEST_F(ObjectCheck, LastAllocationOfTheAreaEndsAtTheBump) {
  char* p = Alloc(64);  // nothing after it: the rest of the area was never handed out
  const size_t usable = pmalloc_usable_size(p);
  EXPECT_EQ(Check(p, usable), 1);
  EXPECT_EQ(Check(p, usable + 1), -1);
  EXPECT_EQ(Check(p + usable + 64, 8), -1);  // never allocated: pool memory, no block
}

TEST_F(ObjectCheck, SpanningTwoAllocationsCrosses) {
  char* a = Alloc(32);
  char* b = Alloc(32);
  ASSERT_GT(b, a);
  EXPECT_EQ(Check(a, static_cast<size_t>(b - a) + 1), -1);
  EXPECT_EQ(Check(b - 1, 2), -1);
  EXPECT_EQ(Check(a, static_cast<size_t>(b - a) + pmalloc_usable_size(b)), -1);
  EXPECT_EQ(Check(b, pmalloc_usable_size(b)), 1);
}

TEST_F(ObjectCheck, FreedBlockCrosses) {
  char* a = Alloc(48);
  Alloc(48);
  live_.erase(live_.begin());
  pfree(pool_, a);
  EXPECT_EQ(Check(a, 1), -1);
  EXPECT_EQ(Check(a, 48), -1);
  char* again = Alloc(48);  // the exact-size free list hands it back
  ASSERT_EQ(again, a);
  EXPECT_EQ(Check(a, 48), 1);
}

TEST_F(ObjectCheck, LargeAllocation) {
  const size_t n = size_t{3} << 20;
  char* p = Alloc(n);
  EXPECT_EQ(Check(p, n), 1);
  EXPECT_EQ(Check(p + 12345, n - 12345), 1);
  EXPECT_EQ(Check(p + n - 8, pmalloc_usable_size(p) - n + 9), -1);
}

TEST_F(ObjectCheck, NoPoolMemory) {
  int on_stack[4] = {};
  void* heap = malloc(64);
  static char in_data[64];
  EXPECT_EQ(Check(nullptr, 0), 0);
  EXPECT_EQ(Check(nullptr, 8), 0);
  EXPECT_EQ(Check(on_stack, sizeof(on_stack)), 0);
  EXPECT_EQ(Check(heap, 64), 0);
  EXPECT_EQ(Check(in_data, sizeof(in_data)), 0);
  free(heap);
}

TEST_F(ObjectCheck, EmptyRangeTouchesNothing) {
  char* p = Alloc(16);
  EXPECT_EQ(Check(p, 0), 0);
  EXPECT_EQ(Check(p + pmalloc_usable_size(p), 0), 0);
}

TEST_F(ObjectCheck, RangeWrappingTheAddressSpaceCrosses) {
  char* p = Alloc(16);
  EXPECT_EQ(Check(p, SIZE_MAX), -1);
}

TEST_F(ObjectCheck, GuardGapBeforeAnAreaIsNoPoolMemoryUntilTheAreaIsReached) {
  char* first = Alloc(16);  // a fresh pool's first block starts its first area
  ASSERT_EQ(reinterpret_cast<uintptr_t>(first) % (64 << 10), 0u) << "not at an area's start";
  EXPECT_EQ(pmalloc_pool_of(first - 1), nullptr);
  EXPECT_EQ(Check(first - 64, 64), 0);   // guard gap or reserved window only
  EXPECT_EQ(Check(first - 64, 65), -1);  // reaches into the area
  EXPECT_EQ(Check(first - (size_t{1} << 20), (size_t{1} << 20) + 1), -1);
}

TEST_F(ObjectCheck, ProtectedPoolAnswersTheSame) {
  char* a = Alloc(40);
  char* b = Alloc(40);
  ASSERT_EQ(pmalloc_protect_pool(pool_), 0);
  ASSERT_EQ(pmalloc_is_protected(a), 1);
  EXPECT_EQ(Check(a, 40), 1);
  EXPECT_EQ(Check(a, static_cast<size_t>(b - a) + 1), -1);
  live_.pop_back();
  pfree(pool_, b);  // after protect: un-accounted, never reused
  EXPECT_EQ(Check(b, 1), -1);
}

TEST_F(ObjectCheck, DestroyedPoolIsNoPoolMemory) {
  pmalloc_pool* other = pmalloc_create_pool("objcheck-gone", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(other, nullptr);
  void* p = pmalloc(other, 64);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Check(p, 64), 1);
  pfree(other, p);
  ASSERT_EQ(pmalloc_destroy_pool(other), 0);
  EXPECT_EQ(Check(p, 64), 0);
}

TEST_F(ObjectCheck, RegisteredLockdownRangeIsNoPoolMemory) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* range = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(range, MAP_FAILED);
  ASSERT_EQ(pmalloc_register_lockdown_range(range, page, "objcheck-range"), 0);
  EXPECT_EQ(Check(range, page), 0);
  EXPECT_EQ(Check(static_cast<char*>(range) + 8, 8), 0);
}

// Allocating threads check their own live blocks while others pfree and pmalloc around
// them; checkers probe ranges that start in blocks the allocators publish (live or freed
// meanwhile). An owner's
// live block is stable, so its answers are exact: 1 inside, -1 one byte past the end
// (the next block's start or the bump, whatever the others do). Anything a checker sees in
// the pool (never destroyed during the test) is 1 or -1, never 0, and never a crash.
TEST(ObjectCheckRace, ChecksRacingAllocAndFree) {
  pmalloc_pool* pool = pmalloc_create_pool("objcheck-race", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pool, nullptr);
  constexpr int kAllocators = 2;
  constexpr int kCheckers = 2;
  constexpr int kSlots = 256;
  constexpr int kRounds = 400000;
  std::atomic<char*> published[kSlots] = {};
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::atomic<long> checks{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kAllocators; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t + 1);
      std::vector<std::pair<char*, size_t>> mine;
      for (int round = 0; round < kRounds; ++round) {
        if (mine.size() < 64 && (mine.empty() || rng() % 2 == 0)) {
          const size_t n = 1 + rng() % (rng() % 8 == 0 ? 5000 : 200);
          char* p = static_cast<char*>(pmalloc(pool, n));
          if (p == nullptr) continue;
          mine.emplace_back(p, pmalloc_usable_size(p));
          published[rng() % kSlots].store(p, std::memory_order_relaxed);
        } else {
          const size_t k = rng() % mine.size();
          pfree(pool, mine[k].first);
          mine[k] = mine.back();
          mine.pop_back();
        }
        if (!mine.empty()) {
          const auto& [p, usable] = mine[rng() % mine.size()];
          if (pmalloc_check_object(p, usable) != 1 || pmalloc_check_object(p, usable + 1) != -1) {
            wrong.fetch_add(1, std::memory_order_relaxed);
          }
        }
      }
      for (const auto& block : mine) pfree(pool, block.first);
    });
  }
  for (int t = 0; t < kCheckers; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      while (!stop.load(std::memory_order_relaxed)) {
        char* p = published[rng() % kSlots].load(std::memory_order_relaxed);
        if (p == nullptr) continue;
        // From inside p's block (at least 16 bytes): the range starts on pool memory.
        const int r = pmalloc_check_object(p + rng() % 16, 1 + rng() % 300);
        if (r != 1 && r != -1) wrong.fetch_add(1, std::memory_order_relaxed);
        checks.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (int t = 0; t < kAllocators; ++t) threads[t].join();
  stop.store(true);
  for (int t = kAllocators; t < kAllocators + kCheckers; ++t) threads[t].join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(checks.load(), 0);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

}  // namespace
