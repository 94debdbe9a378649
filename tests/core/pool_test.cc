// Allocation, reuse, alignment, errno and accounting of pools (no protection here).
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"
#include "proc_mem_write.h"

namespace {

using pmalloc_test::MprotectMode;

pmalloc_pool* NewPool(const char* name, size_t refill = 0, unsigned short order = 0,
                      unsigned flags = 0) {
  pmalloc_pool* p = pmalloc_create_pool(name, refill, order, flags);
  EXPECT_NE(p, nullptr) << "errno " << errno;
  return p;
}

pmalloc_stats Stats(pmalloc_pool* p) {
  pmalloc_stats s{};
  EXPECT_EQ(pmalloc_pool_stats(p, &s), 0);
  return s;
}

TEST(CreatePool, RejectsBadArguments) {
  errno = 0;
  EXPECT_EQ(pmalloc_create_pool(nullptr, 0, 0, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(pmalloc_create_pool("", 0, 0, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(pmalloc_create_pool(std::string(PMALLOC_NAME_MAX + 1, 'x').c_str(), 0, 0, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(pmalloc_create_pool("bad-order", 0, 31, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(pmalloc_create_pool("bad-order", 0, 22, 0), nullptr);  // above 2 MiB
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(pmalloc_create_pool("bad-flags", 0, 0, 1u << 7), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(CreatePool, NullPoolIsEinvalEverywhere) {
  errno = 0;
  EXPECT_EQ(pmalloc(nullptr, 8), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(pmalloc_protect_pool(nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(pmalloc_destroy_pool(nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(pmalloc_prealloc(nullptr, 8), -1);
  EXPECT_EQ(errno, EINVAL);
  pmalloc_stats s;
  EXPECT_EQ(pmalloc_pool_stats(nullptr, &s), -1);
  pfree(nullptr, nullptr);  // no-op
}

// pfree with a NULL (or not a pool) handle and a live pointer frees nothing, sets EINVAL
// and says so in one line.
TEST(Free, NullPoolWithLivePointerIsEinvalAndSaid) {
  pmalloc_pool* pool = NewPool("null-handle");
  void* p = pmalloc(pool, 32);
  testing::internal::CaptureStderr();
  errno = 0;
  pfree(nullptr, p);
  const int err = errno;
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, EINVAL);
  EXPECT_NE(said.find("pmalloc: pfree(): invalid pool handle 0x0 for pointer 0x"),
            std::string::npos)
      << said;
  EXPECT_EQ(Stats(pool).live_allocs, 1u);  // still live, still ours
  pfree(pool, p);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Allocate, DistinctAlignedAndWritable) {
  pmalloc_pool* pool = NewPool("alloc");
  std::set<uintptr_t> seen;
  for (size_t size : {1u, 7u, 8u, 16u, 17u, 100u, 512u, 4000u, 70000u}) {
    char* p = static_cast<char*>(pmalloc(pool, size));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    memset(p, 0xab, size);
    EXPECT_TRUE(seen.insert(reinterpret_cast<uintptr_t>(p)).second);
    EXPECT_EQ(pmalloc_pool_of(p), pool);
    EXPECT_EQ(pmalloc_pool_of(p + size - 1), pool);
    EXPECT_GE(pmalloc_usable_size(p), size);
  }
  for (uintptr_t p : seen) pfree(pool, reinterpret_cast<void*>(p));
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Allocate, ZeroSizeGivesUniquePointers) {
  pmalloc_pool* pool = NewPool("zero");
  void* a = pmalloc(pool, 0);
  void* b = pmalloc(pool, 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  pfree(pool, a);
  pfree(pool, b);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Allocate, OverflowIsEnomem) {
  pmalloc_pool* pool = NewPool("overflow");
  errno = 0;
  EXPECT_EQ(pmalloc_array(pool, SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(pcalloc(pool, SIZE_MAX, SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(pmalloc(pool, SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(pmalloc_aligned(pool, 8, 24), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Allocate, AlignOrderIsHonoured) {
  for (unsigned short order : {3, 4, 6, 12, 17}) {
    pmalloc_pool* pool = NewPool("aligned", 0, order);
    for (int i = 0; i < 50; ++i) {
      void* p = pmalloc(pool, 24 + i);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (1u << order), 0u) << order;
    }
    pmalloc_protect_pool(pool);  // allocations still live: leave the pool
  }
}

// A pool of the largest alignment costs its alignment per allocation, not the window.
TEST(Allocate, LargestPoolAlignmentDoesNotExhaustTheWindow) {
  pmalloc_pool* pool = NewPool("align21", 0, 21);
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) {
    void* p = pmalloc(pool, 1);
    ASSERT_NE(p, nullptr) << i;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (size_t{1} << 21), 0u);
    blocks.push_back(p);
  }
  EXPECT_LE(Stats(pool).mapped_bytes, size_t{100} * (4 << 20));
  for (void* p : blocks) pfree(pool, p);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

// A power-of-two alignment above 1 GiB cannot be satisfied: ENOMEM (glibc's rule); a
// non-power-of-two is EINVAL.
TEST(Allocate, AlignmentAboveOneGibIsEnomem) {
  pmalloc_pool* pool = NewPool("bigalign");
  errno = 0;
  EXPECT_EQ(pmalloc_aligned(pool, 16, size_t{1} << 31), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(pmalloc_aligned(pool, 16, 48), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Allocate, PerCallAlignment) {
  pmalloc_pool* pool = NewPool("percall");
  for (size_t align : {32u, 256u, 4096u, 1u << 20}) {
    void* p = pmalloc_aligned(pool, 40, align);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    pfree(pool, p);
  }
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Allocate, ZeroingAndStrdup) {
  pmalloc_pool* pool = NewPool("zeroing");
  // Dirty a block, free it, then pzalloc must hand it back zeroed.
  char* a = static_cast<char*>(pmalloc(pool, 64));
  memset(a, 0xff, 64);
  pfree(pool, a);
  char* z = static_cast<char*>(pzalloc(pool, 64));
  EXPECT_EQ(z, a) << "same-size block should be reused";
  for (int i = 0; i < 64; ++i) ASSERT_EQ(z[i], 0);
  int* c = static_cast<int*>(pcalloc(pool, 10, sizeof(int)));
  for (int i = 0; i < 10; ++i) ASSERT_EQ(c[i], 0);
  char* s = pstrdup(pool, "policy");
  EXPECT_STREQ(s, "policy");
  errno = 0;
  EXPECT_EQ(pstrdup(pool, nullptr), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Free, ReusesBeforeProtect) {
  pmalloc_pool* pool = NewPool("reuse");
  void* big = pmalloc(pool, 5000);
  void* small = pmalloc(pool, 48);
  pfree(pool, small);
  EXPECT_EQ(pmalloc(pool, 48), small);
  pfree(pool, big);
  void* again = pmalloc(pool, 4000);  // first fit in the freed 5000-byte block
  EXPECT_EQ(again, big);
  pmalloc_stats s = Stats(pool);
  EXPECT_EQ(s.live_allocs, 2u);
  EXPECT_EQ(s.areas, 1u);
}

TEST(Stats, Accounting) {
  pmalloc_pool* pool = NewPool("stats", 1 << 20);
  pmalloc_stats s = Stats(pool);
  EXPECT_EQ(s.live_allocs, 0u);
  EXPECT_EQ(s.areas, 0u);
  void* p = pmalloc(pool, 100);
  s = Stats(pool);
  EXPECT_EQ(s.live_allocs, 1u);
  EXPECT_GE(s.live_bytes, 100u);
  EXPECT_EQ(s.mapped_bytes, 1u << 20);
  EXPECT_EQ(s.areas, 1u);
  EXPECT_EQ(s.is_protected, 0);
  pfree(pool, p);
  s = Stats(pool);
  EXPECT_EQ(s.live_allocs, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Prealloc, AvoidsNewArea) {
  pmalloc_pool* pool = NewPool("prealloc", 4096);
  ASSERT_EQ(pmalloc_prealloc(pool, 100000), 0);
  EXPECT_EQ(Stats(pool).areas, 1u);
  for (int i = 0; i < 100; ++i) ASSERT_NE(pmalloc(pool, 1000), nullptr);
  EXPECT_EQ(Stats(pool).areas, 1u);
}

TEST(Areas, RefillAndPoolsNeverSharePages) {
  pmalloc_pool* a = NewPool("share-a", 4096);
  pmalloc_pool* b = NewPool("share-b", 4096);
  const uintptr_t page = 4096;
  std::set<uintptr_t> pages_a;
  for (int i = 0; i < 200; ++i) {
    uintptr_t p = reinterpret_cast<uintptr_t>(pmalloc(a, 100));
    pages_a.insert(p / page);
  }
  for (int i = 0; i < 200; ++i) {
    uintptr_t p = reinterpret_cast<uintptr_t>(pmalloc(b, 100));
    EXPECT_EQ(pages_a.count(p / page), 0u);
  }
  EXPECT_GT(Stats(a).areas, 1u);  // 200 * 112 bytes does not fit one 4 KiB area
}

// A big pool of small allocations does not take one area (and VMA) per refill: each new
// area is as large as the live bytes (sizes double), up to 32 MiB. 64 MiB at the default
// 64 KiB refill would be 1024+ areas without growth; with it, 64 KiB, 64 KiB, 128 KiB, ...
// 32 MiB: 11 areas. Areas of 2 MiB or more are whole huge pages on huge-page boundaries.
TEST(Areas, GrowWithTheLivePool) {
  pmalloc_pool* pool = NewPool("grow");
  constexpr size_t kTotal = size_t{64} << 20, kSize = 4096, kHuge = size_t{2} << 20;
  std::vector<uintptr_t> blocks;
  for (size_t i = 0; i < kTotal / kSize; ++i) {
    blocks.push_back(reinterpret_cast<uintptr_t>(pmalloc(pool, kSize)));
    ASSERT_NE(blocks.back(), 0u);
  }
  const pmalloc_stats s = Stats(pool);
  EXPECT_EQ(s.live_bytes, kTotal);
  EXPECT_GE(s.areas, 10u);
  EXPECT_LE(s.areas, 13u);
  EXPECT_LE(s.mapped_bytes, kTotal + (size_t{32} << 20));  // at most one area of slack
  // The last block of 64 MiB lies in an area of 32 MiB that starts on a 2 MiB boundary.
  EXPECT_EQ(pmalloc_usable_size(reinterpret_cast<void*>(blocks.back())), kSize);
  size_t aligned_starts = 0;
  for (size_t i = 1; i < blocks.size(); ++i) {
    if (blocks[i] - blocks[i - 1] != kSize) aligned_starts += (blocks[i] % kHuge) == 0;
  }
  EXPECT_GE(aligned_starts, 4u);  // the 2, 4, 8, 16 and 32 MiB areas
  EXPECT_EQ(pmalloc_protect_pool(pool), 0) << "errno " << errno;  // every area protects
  EXPECT_EQ(Stats(pool).is_protected, 1);
}

// Growth follows live bytes, not mapped bytes: a GROWABLE pool that allocates a little
// after each protect keeps opening refill-sized areas (else its address space would grow
// geometrically with the number of protect cycles).
TEST(Areas, ProtectCyclesOfAGrowablePoolKeepRefillSizedAreas) {
  pmalloc_pool* pool = NewPool("grow-cycles", 0, 0, PMALLOC_POOL_GROWABLE | PMALLOC_POOL_MANUAL);
  for (int i = 0; i < 40; ++i) {
    ASSERT_NE(pmalloc(pool, 32), nullptr);
    ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  }
  const pmalloc_stats s = Stats(pool);
  EXPECT_EQ(s.areas, 40u);
  EXPECT_EQ(s.mapped_bytes, s.areas * (size_t{64} << 10));
}

// The /proc/self/maps line of the mapping that contains p.
std::string MapsLineOf(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    if (sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && lo <= a && a < hi) return line;
  }
  return "";
}

bool KernelNamesAnonymousMappings() {
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const bool ok = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, p, 4096, "probe") == 0;
  munmap(p, 4096);
  return ok;
}

// Under protect:shared (the default) writable areas are shared mappings of the pool's memfd,
// so they are named after the pool on every kernel, writable or protected. Under
// protect:mprotect they are anonymous (named where the kernel supports anonymous VMA names).
TEST(Areas, NamedInProcMaps) {
  pmalloc_pool* pool = NewPool("maps-name-check");
  char* p = static_cast<char*>(pmalloc(pool, 8));
  ASSERT_NE(p, nullptr);
  const std::string writable = MapsLineOf(p);
  if (MprotectMode()) {
    EXPECT_EQ(writable.find("memfd"), std::string::npos) << writable;
    if (KernelNamesAnonymousMappings()) {
      EXPECT_NE(writable.find("[anon:pmalloc:maps-name-check]"), std::string::npos) << writable;
    }
  } else {
    EXPECT_NE(writable.find(" rw-s "), std::string::npos) << writable;
    EXPECT_NE(writable.find("/memfd:pmalloc:maps-name-check"), std::string::npos) << writable;
  }
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  const std::string locked = MapsLineOf(p);
  if (!MprotectMode()) {
    EXPECT_NE(locked.find("/memfd:pmalloc:maps-name-check"), std::string::npos) << locked;
  }
}

// Kibibytes on the line `key` of a /proc file (/proc/self/status).
long ProcKiB(const char* path, const char* key) {
  std::ifstream in(path);
  const std::string prefix = key;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return std::stol(line.substr(prefix.size()));
  }
  return -1;
}

// Writing a writable area costs its pages once: either anonymous (protect:mprotect) or
// shared memory (the memfd's pages, protect:shared), never both.
TEST(Areas, WritableAreaMemoryIsNotDoubled) {
  constexpr size_t kBytes = size_t{32} << 20;
  auto total_kib = [] {
    return ProcKiB("/proc/self/status", "RssAnon:") + ProcKiB("/proc/self/status", "RssShmem:");
  };
  pmalloc_pool* pool = NewPool("no-double", kBytes, 0, PMALLOC_POOL_MANUAL);
  const long before = total_kib();
  char* p = static_cast<char*>(pmalloc(pool, kBytes));
  ASSERT_NE(p, nullptr);
  memset(p, 0x5a, kBytes);
  const long grown = total_kib() - before;
  // This process's resident anonymous and shared memory; a doubled area adds 64 MiB.
  EXPECT_GT(grown, 24 * 1024) << "grew by " << grown << " KiB";
  EXPECT_LT(grown, 40 * 1024) << "grew by " << grown << " KiB";
  pfree(pool, p);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(PoolOf, NonPoolPointers) {
  int stack_var = 0;
  std::vector<int> heap(10);
  EXPECT_EQ(pmalloc_pool_of(&stack_var), nullptr);
  EXPECT_EQ(pmalloc_pool_of(heap.data()), nullptr);
  EXPECT_EQ(pmalloc_pool_of(nullptr), nullptr);
  EXPECT_EQ(pmalloc_is_protected(heap.data()), 0);
  EXPECT_EQ(pmalloc_usable_size(heap.data()), 0u);
}

TEST(Destroy, BusyWithLiveAllocations) {
  pmalloc_pool* pool = NewPool("busy");
  void* p = pmalloc(pool, 32);
  errno = 0;
  EXPECT_EQ(pmalloc_destroy_pool(pool), -1);
  EXPECT_EQ(errno, EBUSY);
  // Pool left intact and usable.
  memset(p, 1, 32);
  EXPECT_NE(pmalloc(pool, 8), nullptr);
}

TEST(Destroy, FreesAddressRange) {
  pmalloc_pool* pool = NewPool("gone");
  char* p = static_cast<char*>(pmalloc(pool, 32));
  pfree(pool, p);
  ASSERT_EQ(pmalloc_destroy_pool(pool), 0);
  EXPECT_EQ(pmalloc_pool_of(p), nullptr);
  EXPECT_EXIT(*p = 1, testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT((void)*static_cast<volatile char*>(p), testing::KilledBySignal(SIGSEGV), "");
}

TEST(Destroy, DefaultPoolCannotBeDestroyed) {
  pmalloc_pool* d = pmalloc_default_pool();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d, pmalloc_default_pool());
  EXPECT_STREQ(pmalloc_pool_name(d), "default");
  errno = 0;
  EXPECT_EQ(pmalloc_destroy_pool(d), -1);
  EXPECT_EQ(errno, EPERM);
}

TEST(Misuse, InvalidFreeAborts) {
  pmalloc_pool* pool = NewPool("misuse");
  char* p = static_cast<char*>(pmalloc(pool, 64));
  int local = 0;
  EXPECT_DEATH(pfree(pool, p + 8),
               "pmalloc: pfree\\(\\): invalid pointer 0x[0-9a-f]+ for pool 'misuse'");
  EXPECT_DEATH(pfree(pool, &local), "invalid pointer 0x[0-9a-f]+ for pool 'misuse'");
  pmalloc_pool* other = NewPool("other");
  EXPECT_DEATH(pfree(other, p), "invalid pointer 0x[0-9a-f]+ for pool 'other'");
}

TEST(Misuse, DoubleFreeAborts) {
  pmalloc_pool* pool = NewPool("double");
  void* p = pmalloc(pool, 64);
  pfree(pool, p);
  EXPECT_DEATH(pfree(pool, p), "pmalloc: pfree\\(\\): double free of 0x[0-9a-f]+ in pool 'double'");
}

TEST(Threads, ConcurrentAllocFreeOnePool) {
  pmalloc_pool* pool = NewPool("threads", 1 << 16, 0, PMALLOC_POOL_MANUAL);
  constexpr int kThreads = 4;
  constexpr int kIters = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([pool, t] {
      std::vector<unsigned char*> mine;
      for (int i = 0; i < kIters; ++i) {
        size_t size = 8 + (i * 37 + t) % 500;
        auto* p = static_cast<unsigned char*>(pmalloc(pool, size));
        ASSERT_NE(p, nullptr);
        memset(p, t, size);
        mine.push_back(p);
        if (i % 3 == 0) {
          unsigned char* victim = mine[mine.size() / 2];
          ASSERT_EQ(*victim, t);  // nobody else got our block
          pfree(pool, victim);
          mine[mine.size() / 2] = mine.back();
          mine.pop_back();
        }
      }
      for (unsigned char* p : mine) pfree(pool, p);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

}  // namespace
