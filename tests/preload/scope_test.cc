// Tagged routing through the libc face: allocations inside a scope come from the pool,
// pool pointers handed to free/realloc/delete/malloc_usable_size are handled by their pool,
// from any thread, and a pool pointer never reaches jemalloc.
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"
#include "pmalloc/pmalloc.hpp"

namespace {

size_t Opaque(size_t v) {
  volatile size_t x = v;
  return x;
}

pmalloc_stats Stats(pmalloc_pool* p) {
  pmalloc_stats s{};
  EXPECT_EQ(pmalloc_pool_stats(p, &s), 0);
  return s;
}

TEST(Scope, EnterReturnsPreviousAndExitRestores) {
  pmalloc_pool* a = pmalloc_create_pool("a", 0, 0, 0);
  pmalloc_pool* b = pmalloc_create_pool("b", 0, 0, 0);
  EXPECT_EQ(pmalloc_scope_current(), nullptr);
  pmalloc_pool* prev = pmalloc_scope_enter(a);
  EXPECT_EQ(prev, nullptr);
  pmalloc_pool* prev2 = pmalloc_scope_enter(b);
  EXPECT_EQ(prev2, a);
  EXPECT_EQ(pmalloc_scope_current(), b);
  pmalloc_scope_exit(prev2);
  EXPECT_EQ(pmalloc_scope_current(), a);
  pmalloc_scope_exit(prev);
  EXPECT_EQ(pmalloc_scope_current(), nullptr);
  EXPECT_EQ(pmalloc_destroy_pool(a), 0);
  EXPECT_EQ(pmalloc_destroy_pool(b), 0);
}

// A scope serves malloc and new, which promise 16-byte alignment: a pool created with a
// smaller alignment cannot be one.
TEST(Scope, PoolAlignedBelowMallocIsEinval) {
  pmalloc_pool* narrow = pmalloc_create_pool("scope-narrow", 0, 3, PMALLOC_POOL_MANUAL);
  ASSERT_NE(narrow, nullptr);
  errno = 0;
  EXPECT_EQ(pmalloc_scope_enter(narrow), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(pmalloc_scope_current(), nullptr);
  pmalloc_pool* wide = pmalloc_create_pool("scope-wide", 0, 6, PMALLOC_POOL_MANUAL);
  ASSERT_NE(wide, nullptr);
  EXPECT_EQ(pmalloc_scope_enter(wide), nullptr);
  void* p = malloc(Opaque(3));
  pmalloc_scope_exit(nullptr);
  EXPECT_EQ(pmalloc_pool_of(p), wide);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  free(p);
  EXPECT_EQ(pmalloc_destroy_pool(narrow), 0);
  EXPECT_EQ(pmalloc_destroy_pool(wide), 0);
}

TEST(Scope, InvalidPoolIsEinvalAndLeavesScope) {
  alignas(64) char junk[256] = {};
  errno = 0;
  EXPECT_EQ(pmalloc_scope_enter(reinterpret_cast<pmalloc_pool*>(junk)), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(pmalloc_scope_current(), nullptr);
}

TEST(Scope, EveryAllocationFormComesFromThePool) {
  pmalloc_pool* pool = pmalloc_create_pool("forms", 0, 0, 0);
  std::vector<void*> c_ptrs;
  std::vector<void*> news;
  c_ptrs.reserve(100);  // the vectors themselves must not grow inside the scope
  news.reserve(100);
  {
    pmalloc::ScopedPool scope(pool);
    c_ptrs.push_back(malloc(Opaque(10)));
    c_ptrs.push_back(malloc(Opaque(0)));
    c_ptrs.push_back(calloc(Opaque(10), 10));
    c_ptrs.push_back(realloc(nullptr, Opaque(30)));
    c_ptrs.push_back(memalign(Opaque(64), 10));
    c_ptrs.push_back(aligned_alloc(Opaque(128), 10));
    c_ptrs.push_back(valloc(Opaque(10)));
    c_ptrs.push_back(pvalloc(Opaque(10)));
    void* pm = nullptr;
    ASSERT_EQ(posix_memalign(&pm, Opaque(256), 10), 0);
    c_ptrs.push_back(pm);
    c_ptrs.push_back(strdup("a string duplicated by glibc's strdup"));
    news.push_back(::operator new(Opaque(24)));
    news.push_back(::operator new[](Opaque(24)));
    news.push_back(::operator new (Opaque(24), std::align_val_t{64}));
    news.push_back(::operator new(Opaque(24), std::nothrow));
  }
  for (void* p : c_ptrs) {
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(pmalloc_pool_of(p), pool) << p;
  }
  for (void* p : news) EXPECT_EQ(pmalloc_pool_of(p), pool) << p;
  EXPECT_TRUE((reinterpret_cast<uintptr_t>(c_ptrs[5]) & 127) == 0);
  EXPECT_TRUE((reinterpret_cast<uintptr_t>(c_ptrs[8]) & 255) == 0);
  EXPECT_EQ(Stats(pool).live_allocs, c_ptrs.size() + news.size());
  // Outside the scope, every release form returns the memory to the pool.
  for (void* p : c_ptrs) free(p);
  ::operator delete(news[0], 24);
  ::operator delete[](news[1]);
  ::operator delete (news[2], 24, std::align_val_t{64});
  ::operator delete(news[3], std::nothrow);
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
  void* outside = malloc(Opaque(10));
  EXPECT_EQ(pmalloc_pool_of(outside), nullptr);
  free(outside);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Scope, StlContainersComeFromThePool) {
  pmalloc_pool* pool = pmalloc_create_pool("stl", 0, 0, 0);
  {
    pmalloc::ScopedPool scope(pool);
    std::vector<std::string> v;
    for (int i = 0; i < 100; ++i)
      v.push_back("a long string that needs the heap #" + std::to_string(i));
    EXPECT_EQ(pmalloc_pool_of(v.data()), pool);
    EXPECT_EQ(pmalloc_pool_of(v[99].data()), pool);
    EXPECT_GT(Stats(pool).live_allocs, 100u);
  }
  EXPECT_EQ(Stats(pool).live_allocs, 0u);  // destroyed inside the scope: back to the pool
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Scope, CrossThreadFreeOutsideScopeReturnsToPool) {
  pmalloc_pool* pool = pmalloc_create_pool("xthread", 0, 0, 0);
  std::vector<std::string*> made;
  made.reserve(1000);  // not grown inside the scope
  std::thread producer([&] {
    pmalloc::ScopedPool scope(pool);
    for (int i = 0; i < 1000; ++i) made.push_back(new std::string(100, 'x'));
  });
  producer.join();
  EXPECT_EQ(pmalloc_pool_of(made[0]), pool);
  EXPECT_EQ(pmalloc_pool_of(made[0]->data()), pool);
  const size_t live = Stats(pool).live_allocs;
  EXPECT_GE(live, 2000u);
  std::thread consumer([&] {
    for (std::string* s : made) delete s;
  });
  consumer.join();
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Scope, ManyThreadsTaggedAndUntagged) {
  pmalloc_pool* pool = pmalloc_create_pool("mt", 0, 0, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([pool, t] {
      for (int round = 0; round < 200; ++round) {
        std::vector<void*> ptrs;
        {
          pmalloc::ScopedPool scope(t % 2 == 0 ? pool : nullptr);
          for (int i = 0; i < 50; ++i) ptrs.push_back(malloc(Opaque(16 + i * 8)));
        }
        for (void* p : ptrs) {
          ASSERT_EQ(pmalloc_pool_of(p) == pool, t % 2 == 0);
          free(p);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Scope, ReallocOfPoolMemoryStaysInPool) {
  pmalloc_pool* pool = pmalloc_create_pool("realloc", 0, 0, 0);
  char* p;
  {
    pmalloc::ScopedPool scope(pool);
    p = static_cast<char*>(malloc(Opaque(16)));
  }
  strcpy(p, "hello pool");
  EXPECT_GE(malloc_usable_size(p), 16u);
  EXPECT_EQ(malloc_usable_size(p), pmalloc_usable_size(p));
  p = static_cast<char*>(realloc(p, Opaque(100000)));  // outside any scope
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pmalloc_pool_of(p), pool);
  EXPECT_STREQ(p, "hello pool");
  EXPECT_GE(malloc_usable_size(p), 100000u);
  p = static_cast<char*>(realloc(p, Opaque(8)));
  EXPECT_EQ(pmalloc_pool_of(p), pool);
  EXPECT_EQ(memcmp(p, "hello po", 8), 0);
  EXPECT_EQ(realloc(p, Opaque(0)), nullptr);  // frees into the pool
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Scope, ReallocGrowsIntoTheFreeBlockAfterIt) {
  pmalloc_pool* pool = pmalloc_create_pool("grow", 0, 0, 0);
  char *a, *b, *guard;
  {
    pmalloc::ScopedPool scope(pool);
    a = static_cast<char*>(malloc(Opaque(2000)));
    b = static_cast<char*>(malloc(Opaque(2000)));
    guard = static_cast<char*>(malloc(Opaque(16)));
  }
  memset(a, 'a', 2000);
  free(b);
  char* p = static_cast<char*>(realloc(a, Opaque(3900)));
  EXPECT_EQ(p, a);  // grown in place, nothing copied
  EXPECT_GE(malloc_usable_size(p), 3900u);
  for (size_t i = 0; i < 2000; ++i) ASSERT_EQ(p[i], 'a') << i;
  memset(p, 'b', 3900);
  EXPECT_EQ(Stats(pool).live_allocs, 2u);
  free(p);
  free(guard);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Scope, ReallocGrowthByStepsMovesRarely) {
  pmalloc_pool* pool = pmalloc_create_pool("steps", 0, 0, 0);
  std::vector<void*> others;  // an allocation after each step: the buffer is never last
  others.reserve(8192);       // outside the scope: from jemalloc
  pmalloc::ScopedPool scope(pool);
  char* buf = nullptr;
  size_t moves = 0;
  for (size_t size = 16; size <= (size_t{256} << 10); size += 64) {
    char* p = static_cast<char*>(realloc(buf, Opaque(size)));
    ASSERT_NE(p, nullptr);
    if (buf != nullptr && p != buf) {
      ++moves;
      ASSERT_EQ(p[size - 65], 'x');  // contents moved with it
    }
    p[size - 1] = 'x';
    buf = p;
    others.push_back(malloc(Opaque(24)));
  }
  // One move per 64-byte step would be 4096 moves (and a quadratic copy).
  EXPECT_LT(moves, 64u);
  free(buf);
  for (void* o : others) free(o);
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
}

TEST(Scope, ReallocOfUntaggedMemoryStaysInJemalloc) {
  pmalloc_pool* pool = pmalloc_create_pool("stay", 0, 0, 0);
  void* p = malloc(Opaque(10));
  {
    pmalloc::ScopedPool scope(pool);
    p = realloc(p, Opaque(1000));
  }
  EXPECT_EQ(pmalloc_pool_of(p), nullptr);
  free(p);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Scope, ReallocOnProtectedPoolFailsWithEpermBlockUntouched) {
  pmalloc_pool* pool = pmalloc_create_pool("locked", 0, 0, PMALLOC_POOL_GROWABLE);
  char* p;
  {
    pmalloc::ScopedPool scope(pool);
    p = static_cast<char*>(malloc(Opaque(32)));
  }
  strcpy(p, "frozen");
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  errno = 0;
  EXPECT_EQ(realloc(p, Opaque(4096)), nullptr);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(realloc(p, Opaque(8)), nullptr);
  EXPECT_EQ(errno, EPERM);
  EXPECT_STREQ(p, "frozen");
  EXPECT_EQ(Stats(pool).live_allocs, 1u);
  EXPECT_EQ(malloc_usable_size(p), pmalloc_usable_size(p));
  free(p);  // after protect: accounting only
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
  EXPECT_GE(Stats(pool).freed_after_protect_bytes, 32u);
}

TEST(Scope, AllocationInLockedNonGrowablePoolFailsWithEperm) {
  pmalloc_pool* pool = pmalloc_create_pool("fixed", 0, 0, 0);
  ASSERT_NE(pmalloc(pool, 8), nullptr);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  pmalloc::ScopedPool scope(pool);
  errno = 0;
  EXPECT_EQ(malloc(Opaque(8)), nullptr);
  EXPECT_EQ(errno, EPERM);
  EXPECT_THROW((void)::operator new(Opaque(8)), std::bad_alloc);
  EXPECT_EQ(::operator new(Opaque(8), std::nothrow), nullptr);
}

TEST(Scope, FreeOfPoolPointerBeforeProtectIsReused) {
  pmalloc_pool* pool = pmalloc_create_pool("reuse", 0, 0, 0);
  void* a;
  void* b;
  {
    pmalloc::ScopedPool scope(pool);
    a = malloc(Opaque(48));
    free(a);
    b = malloc(Opaque(48));
  }
  EXPECT_EQ(a, b);
  free(b);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Scope, FreeOfPointerInsideWindowButNoPoolAborts) {
  pmalloc_pool* pool = pmalloc_create_pool("gone", 0, 0, 0);
  void* p = pmalloc(pool, 8);
  pfree(pool, p);
  ASSERT_EQ(pmalloc_destroy_pool(pool), 0);
  EXPECT_DEATH(free(p), "pmalloc: free\\(\\): invalid pointer");
}

// A std::map built inside a scope, then locked down: reads work, writes fault.
TEST(Scope, LockedScopedMapFaultsOnWriteAndReadsCorrectly) {
  using Map = std::map<std::string, std::vector<int>>;
  pmalloc_pool* pool = pmalloc_create_pool("map", 0, 0, 0);
  Map* m;
  {
    pmalloc::ScopedPool scope(pool);
    m = new Map;
    for (int i = 0; i < 200; ++i) {
      std::vector<int>& v = (*m)["key number " + std::to_string(i) + " with a long suffix"];
      for (int j = 0; j < 10; ++j) v.push_back(i * 100 + j);
    }
  }
  const auto& first = *m->begin();
  EXPECT_EQ(pmalloc_pool_of(m), pool);
  EXPECT_EQ(pmalloc_pool_of(&first), pool);
  EXPECT_EQ(pmalloc_pool_of(first.first.data()), pool);
  EXPECT_EQ(pmalloc_pool_of(first.second.data()), pool);
  ASSERT_EQ(pmalloc_lockdown(0), 0);
  EXPECT_EQ(pmalloc_is_protected(first.second.data()), 1);
  ASSERT_EQ(m->size(), 200u);
  for (int i = 0; i < 200; ++i) {
    auto it = m->find("key number " + std::to_string(i) + " with a long suffix");
    ASSERT_NE(it, m->end());
    for (int j = 0; j < 10; ++j) ASSERT_EQ(it->second[j], i * 100 + j);
  }
  EXPECT_EXIT(m->begin()->second[0] = 7, testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT((*m)["inserted after lockdown"].push_back(1), testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(m->begin()->second.push_back(1), testing::KilledBySignal(SIGSEGV), "");
}

// memalign agrees with glibc in and out of a scope: a power-of-two alignment that cannot be
// satisfied is ENOMEM (never EINVAL), a non-power-of-two is EINVAL where glibc says so.
TEST(Scope, HugeAlignmentIsEnomemTaggedAndUntagged) {
  pmalloc_pool* pool = pmalloc_create_pool("hugealign", 0, 0, 0);
  const size_t huge = size_t{1} << 31;
  for (pmalloc_pool* scope : {pool, static_cast<pmalloc_pool*>(nullptr)}) {
    pmalloc::ScopedPool in(scope);
    errno = 0;
    void* p = memalign(huge, Opaque(16));
    if (p != nullptr) {  // jemalloc may manage it untagged: then it is aligned
      EXPECT_EQ(scope, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % huge, 0u);
      free(p);
    } else {
      EXPECT_EQ(errno, ENOMEM) << (scope != nullptr ? "tagged" : "untagged");
    }
    void* q = nullptr;
    const int rc = posix_memalign(&q, huge, Opaque(16));
    if (rc == 0) {
      EXPECT_EQ(scope, nullptr);
      free(q);
    } else {
      EXPECT_EQ(rc, ENOMEM) << (scope != nullptr ? "tagged" : "untagged");
    }
    errno = 0;
    EXPECT_EQ(aligned_alloc(Opaque(48), 16), nullptr);
    EXPECT_EQ(errno, EINVAL);
  }
}

// The test's own writes may lose the race against lockdown and fault: the handler then
// jumps back (the thread tries again), while a fault anywhere else (inside pmalloc) kills.
thread_local sigjmp_buf user_write_env;
thread_local volatile sig_atomic_t in_user_write = 0;

void OnUserWriteFault(int sig) {
  if (in_user_write) siglongjmp(user_write_env, 1);
  signal(sig, SIG_DFL);  // the faulting instruction runs again and kills
}

// realloc and calloc in a scope initialise the block under the pool lock: a lockdown from
// another thread never protects a half-copied or half-zeroed block (issue 9.2). In a
// forked child: lockdown is process-wide.
TEST(Concurrency, ScopeReallocAndCallocRacingLockdown) {
  const pid_t pid = fork();
  if (pid == 0) {
    pmalloc_pool* pool = pmalloc_create_pool("race-scope", 0, 0, PMALLOC_POOL_GROWABLE);
    signal(SIGSEGV, OnUserWriteFault);
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::thread user([&] {
      pmalloc::ScopedPool scope(pool);
      while (!stop.load(std::memory_order_relaxed)) {
        auto* p = static_cast<unsigned char*>(malloc(Opaque(1500)));
        if (p == nullptr) continue;
        if (sigsetjmp(user_write_env, 1) != 0) {
          in_user_write = 0;
          continue;  // lockdown protected p before the test wrote it
        }
        in_user_write = 1;
        memset(p, 0xab, 1500);
        void* dirty = malloc(Opaque(2000));
        if (dirty != nullptr) memset(dirty, 0xcd, 2000);
        in_user_write = 0;
        free(dirty);
        auto* q = static_cast<unsigned char*>(realloc(p, Opaque(3000)));
        if (q != nullptr && (q[0] != 0xab || q[1499] != 0xab)) bad.fetch_add(1);
        auto* z = static_cast<unsigned char*>(calloc(1, Opaque(2000)));
        if (z != nullptr && (z[0] != 0 || z[1999] != 0)) bad.fetch_add(1);
      }
    });
    for (int i = 0; i < 300; ++i) {
      (void)pmalloc_lockdown(0);
      usleep(200 + static_cast<useconds_t>((i * 7919) % 800));
    }
    stop = true;
    user.join();
    _exit(bad.load() == 0 ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

}  // namespace
