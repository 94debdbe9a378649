// Edge cases of kmalloc & co: NULL, 0 / ZERO_SIZE_PTR, overflow, routing, krealloc across
// pools and the heap, kfree of protected objects, ksize, kstrndup limits, kvmalloc large.
#include "pmalloc/compat/slab.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "gtest/gtest.h"
#include "pmalloc/compat/mm.h"
#include "pmalloc/compat/vmalloc.h"

namespace {

pmalloc_stats Stats(pmalloc_pool* p) {
  pmalloc_stats s{};
  EXPECT_EQ(pmalloc_pool_stats(p, &s), 0);
  return s;
}

bool AllZero(const void* p, size_t n) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (c[i] != 0) return false;
  }
  return true;
}

TEST(Kmalloc, KernelRoutesToHeap) {
  void* p = kmalloc(100, GFP_KERNEL);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pmalloc_pool_of(p), nullptr);
  memset(p, 1, 100);
  EXPECT_GE(ksize(p), 100u);
  kfree(p);
  for (gfp_t f : {GFP_ATOMIC, GFP_NOWAIT, GFP_KERNEL | __GFP_NOWARN}) {
    void* q = kmalloc(8, f);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(pmalloc_pool_of(q), nullptr);
    kfree(q);
  }
}

TEST(Kmalloc, LockableRoutesToDefaultPool) {
  void* p = kmalloc(100, GFP_LOCKABLE);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pmalloc_pool_of(p), pmalloc_default_pool());
  const size_t live = Stats(pmalloc_default_pool()).live_allocs;
  kfree(p);
  EXPECT_EQ(Stats(pmalloc_default_pool()).live_allocs, live - 1);
}

TEST(Kmalloc, ZeroSizeGivesZeroSizePtr) {
  EXPECT_EQ(kmalloc(0, GFP_KERNEL), ZERO_SIZE_PTR);
  EXPECT_EQ(kmalloc(0, GFP_LOCKABLE), ZERO_SIZE_PTR);
  EXPECT_EQ(kzalloc(0, GFP_KERNEL), ZERO_SIZE_PTR);
  EXPECT_EQ(kcalloc(0, 8, GFP_KERNEL), ZERO_SIZE_PTR);
  EXPECT_EQ(kmalloc_array(8, 0, GFP_LOCKABLE), ZERO_SIZE_PTR);
  EXPECT_EQ(kvmalloc(0, GFP_KERNEL), ZERO_SIZE_PTR);
  EXPECT_TRUE(ZERO_OR_NULL_PTR(ZERO_SIZE_PTR));
  EXPECT_TRUE(ZERO_OR_NULL_PTR(nullptr));
  EXPECT_EQ(ksize(ZERO_SIZE_PTR), 0u);
  EXPECT_EQ(ksize(nullptr), 0u);
  kfree(ZERO_SIZE_PTR);  // no-ops
  kfree(nullptr);
  kfree_sensitive(ZERO_SIZE_PTR);
  kfree_sensitive(nullptr);
  kvfree(nullptr);
  vfree(nullptr);
  vfree(ZERO_SIZE_PTR);
  volatile char* volatile zsp = static_cast<char*>(ZERO_SIZE_PTR);
  EXPECT_EXIT(*zsp = 1, testing::KilledBySignal(SIGSEGV), "");
}

TEST(Kmalloc, ZeroFlagZeroes) {
  // Dirty then free a few blocks so later allocations are likely to reuse them.
  for (gfp_t where : {GFP_KERNEL, GFP_LOCKABLE}) {
    for (int i = 0; i < 8; ++i) {
      void* d = kmalloc(256, where);
      memset(d, 0xAB, 256);
      kfree(d);
    }
    void* a = kzalloc(256, where);
    void* b = kcalloc(32, 8, where);
    void* c = kmalloc(256, where | __GFP_ZERO);
    void* v = kvzalloc(256, where);
    for (void* p : {a, b, c, v}) {
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(AllZero(p, 256));
      kfree(p);
    }
  }
  void* z = vzalloc(4096);
  ASSERT_NE(z, nullptr);
  EXPECT_TRUE(AllZero(z, 4096));
  vfree(z);
}

TEST(Kmalloc, ArrayOverflowFailsWithEnomem) {
  for (gfp_t where : {GFP_KERNEL, GFP_LOCKABLE}) {
    errno = 0;
    EXPECT_EQ(kmalloc_array(SIZE_MAX / 2 + 2, 2, where), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(kcalloc(2, SIZE_MAX / 2 + 2, where), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(kvmalloc_array(SIZE_MAX, SIZE_MAX, where), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(kvcalloc(SIZE_MAX / 3, 4, where), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    void* p = kmalloc(16, where);
    errno = 0;
    EXPECT_EQ(krealloc_array(p, SIZE_MAX / 8 + 1, 8, where), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    kfree(p);  // untouched by the failed krealloc_array
    // A product that fits but is impossibly large.
    volatile size_t huge = SIZE_MAX - 4096;  // volatile: keeps GCC's size warning quiet
    errno = 0;
    EXPECT_EQ(kmalloc(huge, where), nullptr);
    EXPECT_EQ(errno, ENOMEM);
  }
}

TEST(Kmalloc, InvalidPoolBitsFailWithEinval) {
  errno = 0;
  EXPECT_EQ(kmalloc(16, GFP_KERNEL | (gfp_t{1} << 31)), nullptr);  // unassigned zone
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(kmalloc(16, GFP_LOCKABLE | (gfp_t{1} << 30)), nullptr);  // two pool bits
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(kmalloc(0, GFP_LOCKABLE | (gfp_t{1} << 30)), nullptr);  // checked before size 0
  EXPECT_EQ(errno, EINVAL);
}

TEST(Ksize, ReportsUsableSize) {
  for (gfp_t where : {GFP_KERNEL, GFP_LOCKABLE}) {
    for (size_t n : {1, 16, 17, 1000, 100000}) {
      char* p = static_cast<char*>(kmalloc(n, where));
      ASSERT_NE(p, nullptr);
      const size_t usable = ksize(p);
      EXPECT_GE(usable, n);
      memset(p, 7, usable);  // all of it is ours
      kfree(p);
    }
  }
}

TEST(Krealloc, NullAndZeroSizePtrAllocate) {
  void* p = krealloc(nullptr, 10, GFP_LOCKABLE);
  EXPECT_EQ(pmalloc_pool_of(p), pmalloc_default_pool());
  void* q = krealloc(ZERO_SIZE_PTR, 10, GFP_KERNEL);
  EXPECT_EQ(pmalloc_pool_of(q), nullptr);
  EXPECT_EQ(krealloc(nullptr, 0, GFP_KERNEL), ZERO_SIZE_PTR);
  kfree(p);
  kfree(q);
}

TEST(Krealloc, ZeroSizeFreesAndReturnsZeroSizePtr) {
  void* p = kmalloc(10, GFP_LOCKABLE);
  const size_t live = Stats(pmalloc_default_pool()).live_allocs;
  EXPECT_EQ(krealloc(p, 0, GFP_KERNEL), ZERO_SIZE_PTR);
  EXPECT_EQ(Stats(pmalloc_default_pool()).live_allocs, live - 1);
}

TEST(Krealloc, KeepsTheTagWithoutPoolBits) {
  pmalloc_pool* pool = pmalloc_create_pool("krealloc-keep", 0, 0, PMALLOC_POOL_MANUAL);
  const gfp_t zone = pmalloc_gfp_zone(pool);
  ASSERT_NE(zone, 0u);
  char* p = static_cast<char*>(kmalloc(32, GFP_KERNEL | zone));
  ASSERT_EQ(pmalloc_pool_of(p), pool);
  memcpy(p, "pool data", 10);
  p = static_cast<char*>(krealloc(p, 100000, GFP_KERNEL));  // grows: must move
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pmalloc_pool_of(p), pool);
  EXPECT_STREQ(p, "pool data");
  EXPECT_EQ(Stats(pool).live_allocs, 1u);

  char* h = static_cast<char*>(kmalloc(32, GFP_KERNEL));
  memcpy(h, "heap data", 10);
  h = static_cast<char*>(krealloc(h, 100000, GFP_KERNEL));
  EXPECT_EQ(pmalloc_pool_of(h), nullptr);
  EXPECT_STREQ(h, "heap data");
  kfree(h);
  kfree(p);
  EXPECT_EQ(pmalloc_gfp_zone_release(zone), 0);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Krealloc, InPlaceWhenItFits) {
  for (gfp_t where : {GFP_KERNEL, GFP_LOCKABLE}) {
    char* p = static_cast<char*>(kmalloc(100, where));
    const size_t usable = ksize(p);
    EXPECT_EQ(krealloc(p, usable, GFP_KERNEL), p);
    EXPECT_EQ(krealloc(p, 1, GFP_KERNEL), p);
    kfree(p);
  }
}

TEST(Krealloc, MovesAcrossPoolsAndHeap) {
  pmalloc_pool* a = pmalloc_create_pool("krealloc-a", 0, 0, PMALLOC_POOL_MANUAL);
  pmalloc_pool* b = pmalloc_create_pool("krealloc-b", 0, 0, PMALLOC_POOL_MANUAL);
  const gfp_t za = pmalloc_gfp_zone(a), zb = pmalloc_gfp_zone(b);
  ASSERT_NE(za, 0u);
  ASSERT_NE(zb, 0u);
  char* p = kstrdup("travelling", GFP_KERNEL);               // heap
  p = static_cast<char*>(krealloc(p, 11, GFP_KERNEL | za));  // heap -> a (same size)
  EXPECT_EQ(pmalloc_pool_of(p), a);
  p = static_cast<char*>(krealloc(p, 11, GFP_KERNEL | zb));  // a -> b
  EXPECT_EQ(pmalloc_pool_of(p), b);
  EXPECT_EQ(Stats(a).live_allocs, 0u);
  p = static_cast<char*>(krealloc(p, 64, GFP_LOCKABLE));  // b -> default
  EXPECT_EQ(pmalloc_pool_of(p), pmalloc_default_pool());
  EXPECT_EQ(Stats(b).live_allocs, 0u);
  EXPECT_STREQ(p, "travelling");
  kfree(p);
  EXPECT_EQ(pmalloc_gfp_zone_release(za), 0);
  EXPECT_EQ(pmalloc_gfp_zone_release(zb), 0);
  EXPECT_EQ(pmalloc_destroy_pool(a), 0);
  EXPECT_EQ(pmalloc_destroy_pool(b), 0);
}

TEST(Krealloc, ZeroFlagZeroesTheGrowth) {
  for (gfp_t where : {GFP_KERNEL, GFP_LOCKABLE}) {
    for (int i = 0; i < 8; ++i) {  // dirty memory for reuse
      void* d = kmalloc(4096, where);
      memset(d, 0xCD, 4096);
      kfree(d);
    }
    char* p = static_cast<char*>(kzalloc(16, where));
    memset(p, 'x', 16);
    const size_t old = ksize(p);
    p = static_cast<char*>(krealloc(p, 4000, where | __GFP_ZERO));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p[15], 'x');
    EXPECT_TRUE(AllZero(p + old, 4000 - old));
    kfree(p);
  }
}

TEST(Krealloc, ProtectedFixedPoolFailsAndKeepsTheObject) {
  pmalloc_pool* pool = pmalloc_create_pool("krealloc-ro", 0, 0, PMALLOC_POOL_MANUAL);
  const gfp_t zone = pmalloc_gfp_zone(pool);
  char* p = kstrdup("fixed", GFP_KERNEL | zone);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  errno = 0;
  EXPECT_EQ(krealloc(p, 100000, GFP_KERNEL), nullptr);
  EXPECT_EQ(errno, EPERM);
  EXPECT_STREQ(p, "fixed");
  // Moving it out of the protected pool works: the old object is only un-accounted.
  char* h = static_cast<char*>(krealloc(p, 3, GFP_KERNEL));
  EXPECT_EQ(h, p);  // fits: same home, unchanged, nothing written
  h = static_cast<char*>(krealloc(p, 100000, GFP_LOCKABLE));
  ASSERT_NE(h, nullptr);
  EXPECT_STREQ(h, "fixed");
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
  EXPECT_GT(Stats(pool).freed_after_protect_bytes, 0u);
  kfree(h);
  EXPECT_EQ(pmalloc_gfp_zone_release(zone), 0);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Kfree, ProtectedObjectIsAccountingOnly) {
  pmalloc_pool* pool = pmalloc_create_pool("kfree-ro", 0, 0, PMALLOC_POOL_MANUAL);
  const gfp_t zone = pmalloc_gfp_zone(pool);
  char* p = kstrdup("still here", GFP_KERNEL | zone);
  char* s = kstrdup("secret", GFP_KERNEL | zone);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  kfree(p);
  kfree_sensitive(s);  // cannot zero a read-only page: released for accounting only
  EXPECT_EQ(Stats(pool).live_allocs, 0u);
  EXPECT_GT(Stats(pool).freed_after_protect_bytes, 0u);
  EXPECT_STREQ(p, "still here");  // pages stay mapped read-only until destroy
  EXPECT_STREQ(s, "secret");
  EXPECT_EQ(pmalloc_gfp_zone_release(zone), 0);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Kfree, DoubleFreeOfPoolMemoryAborts) {
  char* p = static_cast<char*>(kmalloc(16, GFP_LOCKABLE));
  kfree(p);
  EXPECT_DEATH(kfree(p), "pmalloc: pfree\\(\\): double free");
  char* q = static_cast<char*>(kmalloc(64, GFP_LOCKABLE));
  EXPECT_DEATH(kfree(q + 16), "pmalloc: pfree\\(\\): invalid pointer");
  kfree(q);
}

TEST(KfreeSensitive, ZeroesBeforeFreeing) {
  // Pool memory: the bytes stay mapped after pfree, so the zeroing is observable.
  char* p = kstrdup("password1234", GFP_LOCKABLE);
  const size_t n = ksize(p);
  kfree_sensitive(p);
  EXPECT_TRUE(AllZero(p, n));
  char* v = static_cast<char*>(kvmalloc(64, GFP_LOCKABLE));
  memset(v, 0x5A, 64);
  kvfree_sensitive(v, 64);
  EXPECT_TRUE(AllZero(v, 64));
}

TEST(Kstrdup, CopiesAndRoutes) {
  EXPECT_EQ(kstrdup(nullptr, GFP_KERNEL), nullptr);
  EXPECT_EQ(kstrndup(nullptr, 4, GFP_KERNEL), nullptr);
  char* a = kstrdup("hello", GFP_LOCKABLE);
  EXPECT_STREQ(a, "hello");
  EXPECT_EQ(pmalloc_pool_of(a), pmalloc_default_pool());
  char* e = kstrdup("", GFP_KERNEL);
  EXPECT_STREQ(e, "");
  kfree(a);
  kfree(e);
}

TEST(Kstrndup, Limits) {
  char* a = kstrndup("abcdef", 3, GFP_KERNEL);
  EXPECT_STREQ(a, "abc");
  char* b = kstrndup("abc", 100, GFP_LOCKABLE);
  EXPECT_STREQ(b, "abc");
  char* c = kstrndup("abc", 0, GFP_KERNEL);
  EXPECT_STREQ(c, "");
  char* d = kstrndup("abc", 3, GFP_KERNEL);
  EXPECT_STREQ(d, "abc");
  // Not NUL-terminated within max: reads no further than max bytes.
  const char raw[4] = {'w', 'x', 'y', 'z'};
  char* f = kstrndup(raw, sizeof(raw), GFP_KERNEL);
  EXPECT_STREQ(f, "wxyz");
  for (char* p : {a, b, c, d, f}) kfree(p);
}

TEST(Kmemdup, CopiesAndEdgeCases) {
  const int src[4] = {1, 2, 3, 4};
  int* p = static_cast<int*>(kmemdup(src, sizeof(src), GFP_LOCKABLE));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(memcmp(p, src, sizeof(src)), 0);
  EXPECT_EQ(pmalloc_pool_of(p), pmalloc_default_pool());
  EXPECT_EQ(kmemdup(src, 0, GFP_KERNEL), ZERO_SIZE_PTR);
  errno = 0;
  EXPECT_EQ(kmemdup(nullptr, 4, GFP_KERNEL), nullptr);
  EXPECT_EQ(errno, EINVAL);
  kfree(p);
}

TEST(Vmalloc, ZeroSizeIsNullAndLargeWorks) {
  errno = 0;
  EXPECT_EQ(vmalloc(0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  const size_t big = size_t{64} << 20;
  char* v = static_cast<char*>(vmalloc(big));
  ASSERT_NE(v, nullptr);
  v[0] = v[big - 1] = 1;
  vfree(v);
  char* lv = static_cast<char*>(__vmalloc(big, GFP_LOCKABLE));
  ASSERT_NE(lv, nullptr);
  EXPECT_EQ(pmalloc_pool_of(lv + big - 1), pmalloc_default_pool());
  vfree(lv);
}

TEST(Kvmalloc, LargeHeapAndPool) {
  const size_t big = size_t{64} << 20;
  for (gfp_t where : {GFP_KERNEL, GFP_LOCKABLE}) {
    char* p = static_cast<char*>(kvmalloc(big, where));
    ASSERT_NE(p, nullptr);
    EXPECT_GE(ksize(p), big);
    memset(p, 3, big);
    EXPECT_EQ(pmalloc_pool_of(p) != nullptr, where == GFP_LOCKABLE);
    kvfree(p);
    char* z = static_cast<char*>(kvzalloc(big, where));
    ASSERT_NE(z, nullptr);
    EXPECT_EQ(z[big / 2], 0);
    EXPECT_EQ(z[big - 1], 0);
    kvfree(z);
  }
}

}  // namespace
