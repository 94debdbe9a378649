// Zone bits: routing kmalloc to a chosen pool, exhaustion, release, invalid pools.
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/compat/slab.h"

namespace {

pmalloc_pool* NewPool(const std::string& name) {
  pmalloc_pool* p = pmalloc_create_pool(name.c_str(), 0, 0, PMALLOC_POOL_MANUAL);
  EXPECT_NE(p, nullptr);
  return p;
}

TEST(Zone, RoutesToThePool) {
  pmalloc_pool* pool = NewPool("zone-route");
  const gfp_t z = pmalloc_gfp_zone(pool);
  ASSERT_NE(z, 0u);
  EXPECT_EQ(z & ~PMALLOC_GFP_ZONE_MASK, 0u);
  EXPECT_EQ(z & (z - 1), 0u);            // one bit
  EXPECT_EQ(pmalloc_gfp_zone(pool), z);  // same pool, same bit
  EXPECT_EQ(pmalloc_gfp_pool(GFP_KERNEL | z), pool);
  EXPECT_EQ(pmalloc_gfp_valid(GFP_KERNEL | z), 1);
  void* a = kmalloc(40, GFP_KERNEL | z);
  void* b = kzalloc(40, GFP_ATOMIC | z);
  char* s = kstrdup("zoned", GFP_KERNEL | z);
  EXPECT_EQ(pmalloc_pool_of(a), pool);
  EXPECT_EQ(pmalloc_pool_of(b), pool);
  EXPECT_EQ(pmalloc_pool_of(s), pool);
  kfree(a);
  kfree(b);
  kfree(s);
  EXPECT_EQ(pmalloc_gfp_zone_release(z), 0);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Zone, DefaultPoolIsGfpLockable) {
  EXPECT_EQ(pmalloc_gfp_zone(pmalloc_default_pool()), __GFP_LOCKABLE);
  EXPECT_EQ(GFP_LOCKABLE, GFP_KERNEL | __GFP_LOCKABLE);
  EXPECT_EQ(pmalloc_gfp_pool(GFP_LOCKABLE), pmalloc_default_pool());
  errno = 0;
  EXPECT_EQ(pmalloc_gfp_pool(GFP_KERNEL), nullptr);  // the heap, not an error
  EXPECT_EQ(pmalloc_gfp_valid(GFP_KERNEL), 1);
  EXPECT_EQ(errno, 0);
}

TEST(Zone, ExhaustionGivesEnospcAndReleaseFreesASlot) {
  std::vector<pmalloc_pool*> pools;
  std::vector<gfp_t> bits;
  for (int i = 0; i < PMALLOC_GFP_ZONES; ++i) {
    pools.push_back(NewPool("zone-" + std::to_string(i)));
    const gfp_t z = pmalloc_gfp_zone(pools.back());
    ASSERT_NE(z, 0u) << "zone " << i << " errno " << errno;
    for (gfp_t other : bits) EXPECT_NE(z, other);
    bits.push_back(z);
  }
  pmalloc_pool* extra = NewPool("zone-extra");
  errno = 0;
  EXPECT_EQ(pmalloc_gfp_zone(extra), 0u);
  EXPECT_EQ(errno, ENOSPC);
  // Already-assigned pools still get their bit while the table is full.
  EXPECT_EQ(pmalloc_gfp_zone(pools[3]), bits[3]);

  void* kept = kmalloc(16, GFP_KERNEL | bits[2]);
  ASSERT_EQ(pmalloc_pool_of(kept), pools[2]);
  ASSERT_EQ(pmalloc_gfp_zone_release(bits[2]), 0);
  errno = 0;
  EXPECT_EQ(kmalloc(16, GFP_KERNEL | bits[2]), nullptr);  // released bit: not the heap
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(pmalloc_gfp_valid(GFP_KERNEL | bits[2]), 0);
  const gfp_t reused = pmalloc_gfp_zone(extra);
  EXPECT_EQ(reused, bits[2]);
  void* moved = kmalloc(16, GFP_KERNEL | reused);
  EXPECT_EQ(pmalloc_pool_of(moved), extra);
  kfree(kept);  // still freed to its own pool
  kfree(moved);

  bits[2] = reused;
  pools[2] = extra;
  for (int i = 0; i < PMALLOC_GFP_ZONES; ++i) {
    EXPECT_EQ(pmalloc_gfp_zone_release(bits[i]), 0);
    EXPECT_EQ(pmalloc_destroy_pool(pools[i]), 0);
  }
}

TEST(Zone, InvalidArguments) {
  errno = 0;
  EXPECT_EQ(pmalloc_gfp_zone(nullptr), 0u);
  EXPECT_EQ(errno, EINVAL);
  alignas(64) char not_a_pool[256] = {};
  errno = 0;
  EXPECT_EQ(pmalloc_gfp_zone(reinterpret_cast<pmalloc_pool*>(not_a_pool)), 0u);
  EXPECT_EQ(errno, EINVAL);
  // Release: zero, non-zone bits, two bits, __GFP_LOCKABLE, an unassigned zone.
  for (gfp_t bad : {gfp_t{0}, GFP_KERNEL, __GFP_LOCKABLE, gfp_t{3u << 25}, gfp_t{1u << 31}}) {
    errno = 0;
    EXPECT_EQ(pmalloc_gfp_zone_release(bad), -1) << bad;
    EXPECT_EQ(errno, EINVAL) << bad;
  }
  // Two pool bits in one allocation are refused, never resolved silently.
  pmalloc_pool* pool = NewPool("zone-two");
  const gfp_t z = pmalloc_gfp_zone(pool);
  errno = 0;
  EXPECT_EQ(kmalloc(8, GFP_LOCKABLE | z), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(pmalloc_gfp_valid(GFP_LOCKABLE | z), 0);
  EXPECT_EQ(pmalloc_gfp_zone_release(z), 0);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

// The zone table is __ro_after_init: after lockdown no zone can be assigned or released
// (EPERM) and routing still works.
TEST(Zone, TableIsReadOnlyAfterLockdown) {
  EXPECT_EXIT(
      {
        pmalloc_pool* pool = pmalloc_create_pool("zone-locked", 0, 0, PMALLOC_POOL_GROWABLE);
        pmalloc_pool* late = pmalloc_create_pool("zone-late", 0, 0, 0);
        const gfp_t z = pmalloc_gfp_zone(pool);
        if (z == 0 || pmalloc_lockdown(0) != 0) _exit(2);
        errno = 0;
        if (pmalloc_gfp_zone(late) != 0 || errno != EPERM) _exit(3);
        errno = 0;
        if (pmalloc_gfp_zone_release(z) != -1 || errno != EPERM) _exit(4);
        if (pmalloc_gfp_zone(pool) != z) _exit(5);  // lookup of an existing zone works
        void* p = kmalloc(8, GFP_KERNEL | z);       // growable: fresh area
        if (pmalloc_pool_of(p) != pool) _exit(6);
        _exit(0);
      },
      testing::ExitedWithCode(0), "");
}

// The address and size of libpmalloc.so's own pmalloc_ro_after_init section (which holds
// the zone table), read from the library file's section headers.
bool LibpmallocRoSection(uintptr_t* addr, size_t* size) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&pmalloc_gfp_zone), &info) == 0) return false;
  std::ifstream in(info.dli_fname, std::ios::binary);
  const std::string elf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (elf.size() < sizeof(Elf64_Ehdr)) return false;
  Elf64_Ehdr eh;
  memcpy(&eh, elf.data(), sizeof(eh));
  auto shdr = [&](size_t i) {
    Elf64_Shdr sh;
    memcpy(&sh, elf.data() + eh.e_shoff + i * sizeof(Elf64_Shdr), sizeof(sh));
    return sh;
  };
  const Elf64_Shdr names = shdr(eh.e_shstrndx);
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr sh = shdr(i);
    if (strcmp(elf.data() + names.sh_offset + sh.sh_name, "pmalloc_ro_after_init") == 0) {
      *addr = reinterpret_cast<uintptr_t>(info.dli_fbase) + sh.sh_addr;
      *size = sh.sh_size;
      return true;
    }
  }
  return false;
}

// An attacker's write into the zone table (to redirect a zone) faults after lockdown.
TEST(Zone, TableWriteFaultsAfterLockdown) {
  uintptr_t addr = 0;
  size_t size = 0;
  ASSERT_TRUE(LibpmallocRoSection(&addr, &size));
  EXPECT_EQ(addr % 4096, 0u);
  EXPECT_EQ(size % 4096, 0u);
  EXPECT_GT(size, 0u);
  EXPECT_EXIT(
      {
        if (pmalloc_lockdown(0) != 0) _exit(2);
        fprintf(stderr, "locked down\n");
        *reinterpret_cast<volatile char*>(addr) = 1;
      },
      testing::KilledBySignal(SIGSEGV), "locked down");
}

}  // namespace

namespace {

// Many threads allocate through the heap, GFP_LOCKABLE and a zone, realloc across them and
// free; run under TSan by tools/run-tests (name contains "Thread").
TEST(ZoneThreads, ConcurrentRoutingReallocAndFree) {
  pmalloc_pool* pool = pmalloc_create_pool("zone-threads", 0, 0, PMALLOC_POOL_MANUAL);
  const gfp_t z = pmalloc_gfp_zone(pool);
  ASSERT_NE(z, 0u);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([z, t] {
      const gfp_t where[3] = {GFP_KERNEL, GFP_LOCKABLE, GFP_KERNEL | z};
      for (int i = 0; i < 2000; ++i) {
        char* p = static_cast<char*>(kmalloc(16 + i % 100, where[(i + t) % 3]));
        p[0] = 'a';
        p = static_cast<char*>(krealloc(p, 200 + i % 300, where[(i + t + 1) % 3]));
        if (p == nullptr || p[0] != 'a') abort();
        kfree(p);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  pmalloc_stats s{};
  ASSERT_EQ(pmalloc_pool_stats(pool, &s), 0);
  EXPECT_EQ(s.live_allocs, 0u);
  EXPECT_EQ(pmalloc_gfp_zone_release(z), 0);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

}  // namespace
