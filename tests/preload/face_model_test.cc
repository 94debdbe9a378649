// Randomised model test of the libc face with tagging scopes: long random sequences of
// malloc, calloc, realloc, reallocarray, aligned_alloc, posix_memalign, memalign,
// operator new/delete (plain, sized, aligned) and free, each made inside a random scope
// (none, or one of two pools, one of them protected and GROWABLE now and then), from two
// threads that also free each other's blocks. After every call the model checks:
//  - a block allocated inside a scope lies in that pool, one allocated outside in no pool
//    (jemalloc); realloc keeps a block where it is (pool block in its pool, heap block on
//    the heap, whatever the current scope) and keeps its first min(old, new) bytes;
//  - alignment, malloc_usable_size >= the request, calloc zeroes;
//  - realloc of a block in a protected area fails with EPERM and leaves it untouched;
//  - every live block keeps its contents until freed, whoever frees it.
// Fixed seeds: a failure names the seed and step.
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

enum class Kind { kMalloc, kNew, kNewArray, kNewAligned };

struct Block {
  size_t size;
  uint8_t fill;
  pmalloc_pool* pool;  // nullptr: the heap
  Kind kind;
  size_t align;  // for kNewAligned
};

// The blocks both threads share: one lock around the model, not around the allocator.
std::mutex model_mutex;
std::map<uintptr_t, Block> live;
// Protect takes it exclusively, every other step shared: a block is never protected between
// its allocation and the model's fill, and realloc knows whether its block is protected.
std::shared_mutex protect_mutex;

pmalloc_pool* pools[2];

void Fill(void* p, const Block& b) { memset(p, b.fill, b.size); }

::testing::AssertionResult Intact(uintptr_t a, const Block& b) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(a);
  for (size_t i = 0; i < b.size; ++i) {
    if (bytes[i] != b.fill) {
      return ::testing::AssertionFailure() << "block " << a << " byte " << i << " changed";
    }
  }
  if (pmalloc_pool_of(bytes) != b.pool) {
    return ::testing::AssertionFailure() << "block " << a << " moved pools";
  }
  return ::testing::AssertionSuccess();
}

// Sets the calling thread's scope for one libc call.
class InScope {
 public:
  explicit InScope(pmalloc_pool* pool) { pmalloc_scope_exit(pool); }
  ~InScope() { pmalloc_scope_exit(nullptr); }
};

class Worker {
 public:
  Worker(uint32_t seed, int id) : rng_(seed * 7919u + static_cast<uint32_t>(id)), seed_(seed) {}

  void Run(int steps) {
    for (step_ = 0; step_ < steps && !::testing::Test::HasFatalFailure(); ++step_) Step();
  }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  size_t Size() { return Pick(4) == 0 ? Pick(70000) : Pick(600); }
  std::string Where() const {
    return "seed " + std::to_string(seed_) + " step " + std::to_string(step_);
  }

  void Step() {
    // The scope of this call: none half of the time, else one of the pools. It is set
    // around the libc call only: the model's own bookkeeping stays on the heap.
    const size_t s = Pick(4);
    pmalloc_pool* scope = s < 2 ? nullptr : pools[s - 2];
    const size_t op = Pick(100);
    std::shared_lock<std::shared_mutex> step_lock(protect_mutex, std::defer_lock);
    if (op < 98) step_lock.lock();
    if (op < 45) {
      Allocate(scope);
    } else if (op < 60) {
      Realloc(scope);
    } else if (op < 98) {
      Free(scope);
    } else if (op < 99) {
      // Protect the GROWABLE pool: its blocks so far stay readable, realloc of them fails.
      std::unique_lock<std::shared_mutex> lock(protect_mutex);
      ASSERT_EQ(pmalloc_protect_pool(pools[1]), 0) << Where();
    }
  }

  void Record(void* p, size_t size, pmalloc_pool* scope, Kind kind, size_t align) {
    ASSERT_NE(p, nullptr) << Where() << " errno " << errno;
    ASSERT_EQ(pmalloc_pool_of(p), scope) << Where() << " size " << size;
    ASSERT_GE(malloc_usable_size(p), size) << Where();
    const Block b{size, static_cast<uint8_t>(Pick(256)), scope, kind, align};
    Fill(p, b);
    std::lock_guard<std::mutex> lock(model_mutex);
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto next = live.lower_bound(a);
    if (next != live.end()) {
      ASSERT_LE(a + size, next->first) << Where();
    }
    if (next != live.begin()) {
      auto prev = std::prev(next);
      ASSERT_LE(prev->first + prev->second.size, a) << Where();
    }
    live[a] = b;
  }

  void Allocate(pmalloc_pool* scope) {
    const size_t size = Size();
    void* p = nullptr;
    switch (Pick(9)) {
      case 0: {
        const size_t n = 1 + Pick(40);
        {
          InScope in(scope);
          p = calloc(n, 7);
        }
        ASSERT_NE(p, nullptr) << Where();
        for (size_t i = 0; i < n * 7; ++i) ASSERT_EQ(static_cast<uint8_t*>(p)[i], 0) << Where();
        return Record(p, n * 7, scope, Kind::kMalloc, 0);
      }
      case 1: {
        const size_t n = 1 + Pick(50);
        {
          InScope in(scope);
          p = reallocarray(nullptr, n, 3);
        }
        return Record(p, n * 3, scope, Kind::kMalloc, 0);
      }
      case 2: {
        const size_t align = size_t{1} << (4 + Pick(9));
        {
          InScope in(scope);
          p = aligned_alloc(align, size);
        }
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << Where() << " align " << align;
        return Record(p, size, scope, Kind::kMalloc, 0);
      }
      case 3: {
        const size_t align = size_t{1} << (3 + Pick(10));
        int r;
        {
          InScope in(scope);
          r = posix_memalign(&p, align, size);
        }
        ASSERT_EQ(r, 0) << Where();
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << Where();
        return Record(p, size, scope, Kind::kMalloc, 0);
      }
      case 4: {
        {
          InScope in(scope);
          p = memalign(64, size);
        }
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << Where();
        return Record(p, size, scope, Kind::kMalloc, 0);
      }
      case 5: {
        {
          InScope in(scope);
          p = ::operator new(size);
        }
        return Record(p, size, scope, Kind::kNew, 0);
      }
      case 6: {
        {
          InScope in(scope);
          p = ::operator new[](size);
        }
        return Record(p, size, scope, Kind::kNewArray, 0);
      }
      case 7: {
        const size_t align = size_t{1} << (5 + Pick(8));
        {
          InScope in(scope);
          p = ::operator new (size, std::align_val_t{align});
        }
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << Where();
        return Record(p, size, scope, Kind::kNewAligned, align);
      }
      default: {
        {
          InScope in(scope);
          p = malloc(size);
        }
        return Record(p, size, scope, Kind::kMalloc, 0);
      }
    }
  }

  // Takes a random live block out of the model (so that no other thread touches it).
  bool Take(uintptr_t* a, Block* b, bool malloc_only) {
    std::lock_guard<std::mutex> lock(model_mutex);
    if (live.empty()) return false;
    auto it = live.begin();
    std::advance(it, static_cast<long>(Pick(live.size())));
    if (malloc_only && it->second.kind != Kind::kMalloc) return false;
    *a = it->first;
    *b = it->second;
    live.erase(it);
    return true;
  }

  void Realloc(pmalloc_pool* scope) {
    uintptr_t a;
    Block b;
    if (!Take(&a, &b, /*malloc_only=*/true)) return;
    ASSERT_TRUE(Intact(a, b)) << Where();
    const size_t size = 1 + Size();
    errno = 0;
    void* p;
    bool was_protected;
    {
      was_protected = pmalloc_is_protected(reinterpret_cast<void*>(a)) != 0;
      InScope in(scope);
      p = realloc(reinterpret_cast<void*>(a), size);
    }
    if (was_protected) {
      ASSERT_EQ(p, nullptr) << Where();
      ASSERT_EQ(errno, EPERM) << Where();
      ASSERT_TRUE(Intact(a, b)) << Where();
      std::lock_guard<std::mutex> lock(model_mutex);
      live[a] = b;  // still live, still intact
      return;
    }
    ASSERT_NE(p, nullptr) << Where() << " errno " << errno;
    const auto* bytes = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < std::min(size, b.size); ++i) ASSERT_EQ(bytes[i], b.fill) << Where();
    // Stays where it was, whatever this thread's scope is.
    Record(p, size, b.pool, Kind::kMalloc, 0);
  }

  void Free(pmalloc_pool* scope) {
    uintptr_t a;
    Block b;
    if (!Take(&a, &b, false)) return;
    ASSERT_TRUE(Intact(a, b)) << Where();
    void* p = reinterpret_cast<void*>(a);
    InScope in(scope);  // freeing never depends on the scope
    switch (b.kind) {
      case Kind::kMalloc:
        return free(p);
      case Kind::kNew:
        if (Pick(2) == 0) return ::operator delete(p, b.size);
        return ::operator delete(p);
      case Kind::kNewArray:
        return ::operator delete[](p, b.size);
      case Kind::kNewAligned:
        return ::operator delete (p, b.size, std::align_val_t{b.align});
    }
  }

  std::mt19937 rng_;
  uint32_t seed_;
  int step_ = 0;
};

class FaceModelTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(FaceModelTest, TwoThreadsMatchTheModel) {
  pools[0] = pmalloc_create_pool("face-model-a", 0, 0, PMALLOC_POOL_MANUAL);
  pools[1] = pmalloc_create_pool("face-model-b", 0, 0, PMALLOC_POOL_MANUAL | PMALLOC_POOL_GROWABLE);
  ASSERT_NE(pools[0], nullptr);
  ASSERT_NE(pools[1], nullptr);
  std::thread other([] { Worker(GetParam(), 1).Run(15000); });
  Worker(GetParam(), 0).Run(15000);
  other.join();
  // Whatever is left: intact, then freed; the pools are then empty.
  for (const auto& [a, b] : live) {
    ASSERT_TRUE(Intact(a, b));
    void* p = reinterpret_cast<void*>(a);
    if (b.kind == Kind::kNewAligned) {
      ::operator delete (p, std::align_val_t{b.align});
    } else if (b.kind == Kind::kNewArray) {
      ::operator delete[](p);
    } else if (b.kind == Kind::kNew) {
      ::operator delete(p);
    } else {
      free(p);
    }
  }
  live.clear();
  for (pmalloc_pool* pool : pools) {
    pmalloc_stats s{};
    ASSERT_EQ(pmalloc_pool_stats(pool, &s), 0);
    EXPECT_EQ(s.live_allocs, 0u);
    EXPECT_EQ(pmalloc_destroy_pool(pool), 0) << "errno " << errno;
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, FaceModelTest, ::testing::Values(1u, 2u, 3u));

}  // namespace
