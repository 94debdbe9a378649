// Randomised model test of the pool API: long random sequences of pmalloc, pzalloc,
// pcalloc, pmalloc_aligned, pstrdup, pfree, protect (GROWABLE pools) and prealloc over
// several pools at once, checked against a plain model after every step:
//  - every live block lies in its pool (pmalloc_pool_of), is aligned as asked, has a usable
//    size of at least the request, and overlaps no other live block of any pool;
//  - every live block keeps the bytes written into it when it was allocated (reuse of a
//    freed block never hands out memory that is still live);
//  - pzalloc/pcalloc memory is zero even when it reuses a freed block;
//  - stats: live_allocs and live_bytes match the model, freed_after_protect_bytes grows by
//    exactly the usable size of each block freed after protect, is_protected follows
//    protect and the next allocation;
//  - at the end every pool is destroyed: 0, or EBUSY while anything is live.
// Fixed seeds: a failure names its seed and step and reproduces.
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

struct Block {
  size_t pool;       // index into the test's pools
  size_t size;       // requested
  size_t usable;     // pmalloc_usable_size at allocation
  uint8_t fill;      // every byte of [0, size) holds this (unless `text` is set)
  bool protected_;   // its area was protected (writes would fault; pfree only accounts)
  std::string text;  // pstrdup blocks: the string they hold
};

struct PoolModel {
  pmalloc_pool* pool = nullptr;
  size_t align = 16;  // the pool's own alignment
  bool growable = false;
  size_t live_allocs = 0;
  size_t live_bytes = 0;
  size_t freed_after_protect = 0;
  bool is_protected = false;
};

class Model {
 public:
  explicit Model(uint32_t seed) : rng_(seed), seed_(seed) {}

  void Run(int steps) {
    const unsigned short orders[] = {0, 3, 5, 6};
    for (size_t i = 0; i < 4; ++i) {
      PoolModel m;
      m.growable = i % 2 == 0;
      m.align = orders[i] == 0 ? 16 : size_t{1} << orders[i];
      const std::string name = "model-" + std::to_string(seed_) + "-" + std::to_string(i);
      m.pool = pmalloc_create_pool(name.c_str(), i == 3 ? 4096 : 0, orders[i],
                                   PMALLOC_POOL_MANUAL | (m.growable ? PMALLOC_POOL_GROWABLE : 0u));
      ASSERT_NE(m.pool, nullptr) << "errno " << errno;
      pools_.push_back(m);
    }
    for (step_ = 0; step_ < steps; ++step_) {
      Step();
      if (::testing::Test::HasFatalFailure()) return;
      if (step_ % 1024 == 0) CheckAll();
      if (::testing::Test::HasFatalFailure()) return;
    }
    CheckAll();
    Teardown();
  }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  size_t RandomSize() {
    switch (Pick(8)) {
      case 0:
        return 0;
      case 1:
        return 1 + Pick(8);
      case 2:
        return 4096 + Pick(20000);  // beyond a 4 KiB refill
      case 3:
        return 1000 + Pick(3000);  // around the 1 KiB line: free ranges, merged and split
      default:
        return 1 + Pick(512);
    }
  }

  std::string Where() const {
    return "seed " + std::to_string(seed_) + " step " + std::to_string(step_);
  }

  void Step() {
    const size_t pi = Pick(pools_.size());
    PoolModel& m = pools_[pi];
    const size_t op = Pick(100);
    if (op < 40) {
      Allocate(pi, RandomSize(), 0, 0);
    } else if (op < 48) {
      Allocate(pi, RandomSize(), 0, 1);  // pzalloc
    } else if (op < 54) {
      Allocate(pi, 1 + Pick(64), 0, 2);  // pcalloc
    } else if (op < 62) {
      Allocate(pi, RandomSize(), std::max(m.align, size_t{1} << (4 + Pick(9))), 0);
    } else if (op < 66) {
      Allocate(pi, 0, 0, 3);  // pstrdup
    } else if (op < 95) {
      FreeRandom();
    } else if (op < 97) {
      ASSERT_EQ(pmalloc_prealloc(m.pool, RandomSize()), 0) << Where() << " errno " << errno;
      m.is_protected = false;  // room in a writable area, or a new one (GROWABLE)
    } else if (m.growable) {
      ASSERT_EQ(pmalloc_protect_pool(m.pool), 0) << Where() << " errno " << errno;
      m.is_protected = true;
      for (auto& [p, b] : live_) {
        if (b.pool == pi) b.protected_ = true;
      }
    }
  }

  void Allocate(size_t pi, size_t size, size_t align, int kind) {
    PoolModel& m = pools_[pi];
    const bool fails = m.is_protected && !m.growable;
    void* p = nullptr;
    std::string text;
    errno = 0;
    switch (kind) {
      case 0:
        p = align == 0 ? pmalloc(m.pool, size) : pmalloc_aligned(m.pool, size, align);
        break;
      case 1:
        p = pzalloc(m.pool, size);
        break;
      case 2:
        p = pcalloc(m.pool, size, 3);
        size *= 3;
        break;
      default:
        text = "string " + std::to_string(step_);
        p = pstrdup(m.pool, text.c_str());
        size = text.size() + 1;
        break;
    }
    if (fails) {
      ASSERT_EQ(p, nullptr) << Where();
      ASSERT_EQ(errno, EPERM) << Where();
      return;
    }
    ASSERT_NE(p, nullptr) << Where() << " errno " << errno;
    m.is_protected = false;  // a GROWABLE pool opened a writable area
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    ASSERT_EQ(pmalloc_pool_of(p), m.pool) << Where();
    ASSERT_EQ(pmalloc_is_protected(p), 0) << Where();
    const size_t need = std::max(align, m.align);
    ASSERT_EQ(a % need, 0u) << Where() << " align " << need;
    const size_t usable = pmalloc_usable_size(p);
    ASSERT_GE(usable, size) << Where();
    ASSERT_GE(usable, 1u) << Where();
    // No overlap with any live block (of any pool): the neighbours in address order.
    auto next = live_.lower_bound(a);
    if (next != live_.end()) {
      ASSERT_LE(a + usable, next->first) << Where();
    }
    if (next != live_.begin()) {
      auto prev = std::prev(next);
      ASSERT_LE(prev->first + prev->second.usable, a) << Where();
    }
    auto* bytes = static_cast<uint8_t*>(p);
    if (kind == 1 || kind == 2) {
      for (size_t i = 0; i < size; ++i) ASSERT_EQ(bytes[i], 0) << Where() << " byte " << i;
    }
    if (kind == 3) {
      ASSERT_STREQ(static_cast<char*>(p), text.c_str()) << Where();
    }
    const uint8_t fill = static_cast<uint8_t>(Pick(256));
    if (kind != 3) memset(p, fill, size);
    live_[a] = Block{pi, size, usable, fill, false, text};
    ++m.live_allocs;
    m.live_bytes += usable;
  }

  void FreeRandom() {
    if (live_.empty()) return;
    auto it = live_.begin();
    std::advance(it, static_cast<long>(Pick(live_.size())));
    CheckBlock(it->first, it->second);
    if (::testing::Test::HasFatalFailure()) return;
    PoolModel& m = pools_[it->second.pool];
    pfree(m.pool, reinterpret_cast<void*>(it->first));
    --m.live_allocs;
    m.live_bytes -= it->second.usable;
    if (it->second.protected_) m.freed_after_protect += it->second.usable;
    live_.erase(it);
  }

  void CheckBlock(uintptr_t a, const Block& b) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(a);
    ASSERT_EQ(pmalloc_pool_of(bytes), pools_[b.pool].pool) << Where();
    ASSERT_EQ(pmalloc_usable_size(bytes), b.usable) << Where();
    if (!b.text.empty()) {
      ASSERT_STREQ(reinterpret_cast<const char*>(bytes), b.text.c_str()) << Where();
      return;
    }
    for (size_t i = 0; i < b.size; ++i) {
      ASSERT_EQ(bytes[i], b.fill) << Where() << " block " << a << " byte " << i;
    }
  }

  void CheckAll() {
    for (const auto& [a, b] : live_) {
      CheckBlock(a, b);
      if (::testing::Test::HasFatalFailure()) return;
      ASSERT_EQ(pmalloc_is_protected(reinterpret_cast<void*>(a)), b.protected_ ? 1 : 0) << Where();
    }
    for (const PoolModel& m : pools_) {
      pmalloc_stats s{};
      ASSERT_EQ(pmalloc_pool_stats(m.pool, &s), 0);
      ASSERT_EQ(s.live_allocs, m.live_allocs) << Where();
      ASSERT_EQ(s.live_bytes, m.live_bytes) << Where();
      ASSERT_EQ(s.freed_after_protect_bytes, m.freed_after_protect) << Where();
      ASSERT_EQ(s.is_protected, m.is_protected ? 1 : 0) << Where();
    }
  }

  void Teardown() {
    // A pool with live blocks refuses; once they are freed it goes.
    for (size_t pi = 0; pi < pools_.size(); ++pi) {
      PoolModel& m = pools_[pi];
      bool any = false;
      for (const auto& [a, b] : live_) any = any || b.pool == pi;
      if (any) {
        errno = 0;
        ASSERT_EQ(pmalloc_destroy_pool(m.pool), -1) << Where();
        ASSERT_EQ(errno, EBUSY);
      }
    }
    while (!live_.empty()) FreeRandom();
    for (PoolModel& m : pools_) {
      ASSERT_EQ(pmalloc_destroy_pool(m.pool), 0) << Where() << " errno " << errno;
    }
  }

  std::mt19937 rng_;
  uint32_t seed_;
  int step_ = 0;
  std::vector<PoolModel> pools_;
  std::map<uintptr_t, Block> live_;
};

class PoolModelTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(PoolModelTest, RandomSequencesMatchTheModel) { Model(GetParam()).Run(20000); }

INSTANTIATE_TEST_SUITE_P(Seeds, PoolModelTest,
                         ::testing::Values(1u, 2u, 3u, 42u, 1234u, 7u, 99u, 2026u));

}  // namespace
