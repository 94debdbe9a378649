// Write-rare pools (docs/write-rare.md): after protect, pmalloc_wr_* change live allocations
// through the pool's memfd, and no mapping at the object's address is ever writable.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "in_child.h"
#include "pmalloc/pmalloc.h"
#include "proc_mem_write.h"

namespace {

using pmalloc_test::InChild;
using pmalloc_test::ProcMemWrite;

constexpr unsigned kWrFlags = PMALLOC_POOL_WRITE_RARE | PMALLOC_POOL_MANUAL;

bool HasMseal() {
  void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return syscall(462, p, 4096, 0) == 0 || errno != ENOSYS;  // page left mapped on purpose
}

// The descriptors of this process open on the memfd "pmalloc:<pool>".
std::vector<int> PoolDescriptors(const char* pool) {
  std::vector<int> fds;
  const std::string want = std::string("/memfd:pmalloc:") + pool + " (deleted)";
  DIR* d = opendir("/proc/self/fd");
  while (dirent* e = readdir(d)) {
    char target[256] = {};
    const std::string path = std::string("/proc/self/fd/") + e->d_name;
    if (readlink(path.c_str(), target, sizeof(target) - 1) > 0 && want == target) {
      fds.push_back(atoi(e->d_name));
    }
  }
  closedir(d);
  return fds;
}

// The permission field ("r--s", ...) of every /proc/self/maps line covering `addr`.
std::vector<std::string> PermsCovering(const void* addr) {
  std::vector<std::string> perms;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    char p[8] = {};
    if (sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, p) == 3 && a >= lo && a < hi) {
      perms.emplace_back(p);
    }
  }
  return perms;
}

struct Config {
  uint64_t generation;
  const char* name;
  char text[64];
};

TEST(WriteRare, UnknownFlagStillRejected) {
  EXPECT_EQ(pmalloc_create_pool("wr-flags", 0, 0, 1u << 7), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(WriteRare, PlainStoresBeforeProtect) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-plain", 0, 0, kWrFlags);
  ASSERT_NE(pool, nullptr);
  auto* c = static_cast<Config*>(pzalloc(pool, sizeof(Config)));
  ASSERT_EQ(pmalloc_wr_memcpy(&c->generation, "\x07\0\0\0\0\0\0\0", 8), 0);
  EXPECT_EQ(c->generation, 7u);
  ASSERT_EQ(pmalloc_wr_assign_ptr(&c->name, "first"), 0);
  EXPECT_STREQ(c->name, "first");
  ASSERT_EQ(pmalloc_wr_memset(c->text, 'x', sizeof(c->text)), 0);
  EXPECT_EQ(c->text[63], 'x');
  c->generation = 8;  // still an ordinary writable pool
  EXPECT_EQ(pmalloc_is_protected(c), 0);
  pfree(pool, c);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(WriteRare, ErrnoCases) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-errno", 0, 0, kWrFlags);
  pmalloc_pool* plain = pmalloc_create_pool("wr-errno-plain", 0, 0, PMALLOC_POOL_MANUAL);
  auto* c = static_cast<Config*>(pzalloc(pool, sizeof(Config)));
  auto* gone = static_cast<char*>(pzalloc(pool, 64));
  auto* other = static_cast<char*>(pzalloc(plain, 64));
  pfree(pool, gone);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  ASSERT_EQ(pmalloc_protect_pool(plain), 0);
  const size_t usable = pmalloc_usable_size(c);
  char src[256] = {1, 2, 3};
  char stack[16];
  std::vector<char> heap(16);
  auto expect_einval = [&](int rc, const char* what) {
    EXPECT_EQ(rc, -1) << what;
    EXPECT_EQ(errno, EINVAL) << what;
  };
  expect_einval(pmalloc_wr_memcpy(nullptr, src, 8), "NULL");
  expect_einval(pmalloc_wr_memcpy(stack, src, 8), "stack");
  expect_einval(pmalloc_wr_memcpy(heap.data(), src, 8), "heap");
  expect_einval(pmalloc_wr_memcpy(other, src, 8), "plain pool");
  expect_einval(pmalloc_wr_memcpy(gone, src, 8), "freed block");
  expect_einval(pmalloc_wr_memcpy(c, src, usable + 1), "past the end");
  expect_einval(pmalloc_wr_memcpy(reinterpret_cast<char*>(c) + usable - 4, src, 8), "straddling");
  expect_einval(pmalloc_wr_memset(c, 0, usable + 1), "memset past the end");
  expect_einval(pmalloc_wr_memset(other, 0, 1), "memset plain pool");
  expect_einval(pmalloc_wr_memcpy(c->text, c->text + 4, 8), "overlapping source");
  expect_einval(pmalloc_wr_assign_ptr(reinterpret_cast<char*>(c) + 4, src), "misaligned");
  expect_einval(pmalloc_wr_assign_ptr(other, src), "assign plain pool");
  expect_einval(pmalloc_wr_assign_ptr(reinterpret_cast<char*>(c) + usable, src), "assign past end");
  expect_einval(pmalloc_make_pool_ro(plain), "make_pool_ro of a plain pool");
  expect_einval(pmalloc_make_pool_ro(nullptr), "make_pool_ro(NULL)");
  // Nothing was written by any of them.
  for (char b : c->text) EXPECT_EQ(b, 0);
  EXPECT_EQ(c->name, nullptr);
  // The whole allocation, to its last usable byte, is writable through wr_*.
  EXPECT_EQ(pmalloc_wr_memcpy(c, src, usable), 0);
  EXPECT_EQ(pmalloc_wr_memcpy(c, src, 0), 0);

  ASSERT_EQ(pmalloc_make_pool_ro(pool), 0);
  auto expect_eperm = [&](int rc, const char* what) {
    EXPECT_EQ(rc, -1) << what;
    EXPECT_EQ(errno, EPERM) << what;
  };
  expect_eperm(pmalloc_wr_memcpy(c, src, 8), "memcpy after make_pool_ro");
  expect_eperm(pmalloc_wr_memset(c, 0, 8), "memset after make_pool_ro");
  expect_eperm(pmalloc_wr_assign_ptr(&c->name, src), "assign after make_pool_ro");
  EXPECT_EQ(reinterpret_cast<char*>(c)[1], 2);
}

TEST(WriteRare, UpdatesVisibleAndRealAddressStaysReadOnly) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-visible", 0, 0, kWrFlags);
  auto* c = static_cast<Config*>(pzalloc(pool, sizeof(Config)));
  static const char kFirst[] = "first", kSecond[] = "second";
  c->name = kFirst;
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_EQ(pmalloc_is_protected(c), 1);
  const uint64_t g = 42;
  ASSERT_EQ(pmalloc_wr_memcpy(&c->generation, &g, sizeof(g)), 0);
  ASSERT_EQ(pmalloc_wr_memset(c->text, 'q', 10), 0);
  ASSERT_EQ(pmalloc_wr_assign_ptr(&c->name, kSecond), 0);
  EXPECT_EQ(c->generation, 42u);
  EXPECT_EQ(std::string(c->text, 11), std::string("qqqqqqqqqq\0", 11));
  EXPECT_EQ(c->name, kSecond);
  EXPECT_EQ(pmalloc_is_protected(c), 1);
  for (const std::string& p : PermsCovering(c)) EXPECT_EQ(p.find('w'), std::string::npos) << p;
  // A plain store still faults after the updates.
  EXPECT_EXIT(*static_cast<volatile uint64_t*>(&c->generation) = 1,
              testing::KilledBySignal(SIGSEGV), "");
  // Write-rare does not make the pool allocate again: not GROWABLE, protected for good.
  EXPECT_EQ(pmalloc(pool, 64), nullptr);
  EXPECT_EQ(errno, EPERM);
}

TEST(WriteRare, LargeBlockAcrossPages) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-large", 0, 0, kWrFlags);
  auto* big = static_cast<unsigned char*>(pzalloc(pool, 5 * 4096));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  std::vector<unsigned char> src(3 * 4096);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<unsigned char>(i * 13);
  ASSERT_EQ(pmalloc_wr_memcpy(big + 1000, src.data(), src.size()), 0);
  EXPECT_EQ(memcmp(big + 1000, src.data(), src.size()), 0);
  EXPECT_EQ(big[999], 0);
  EXPECT_EQ(big[1000 + src.size()], 0);
  ASSERT_EQ(pmalloc_wr_memset(big, 0xab, 5 * 4096), 0);
  for (size_t i = 0; i < 5 * 4096; i += 511) EXPECT_EQ(big[i], 0xab);
}

TEST(WriteRare, ProcSelfMemWriteRefused) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-procmem", 0, 0, kWrFlags);
  auto* v = static_cast<uint64_t*>(pzalloc(pool, 64));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  const uint64_t bad = 0xbad;
  EXPECT_EQ(ProcMemWrite(v, &bad, sizeof(bad)), -1);
  EXPECT_EQ(errno, EIO);
  const uint64_t good = 0x600d;
  ASSERT_EQ(pmalloc_wr_memcpy(v, &good, sizeof(good)), 0);
  EXPECT_EQ(*v, good);
  EXPECT_EQ(ProcMemWrite(v, &bad, sizeof(bad)), -1);
  EXPECT_EQ(*v, good);
}

// The kept descriptor: one, high, close-on-exec; gone after make_pool_ro, and destroy.
TEST(WriteRare, DescriptorKeptUntilMakePoolRo) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-fd", 0, 0, kWrFlags);
  auto* v = static_cast<uint64_t*>(pzalloc(pool, 64));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  const std::vector<int> fds = PoolDescriptors("wr-fd");
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_GE(fds[0], 512);
  EXPECT_NE(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(pmalloc_make_pool_ro(pool), 0);
  EXPECT_TRUE(PoolDescriptors("wr-fd").empty());
  EXPECT_EQ(pmalloc_is_protected(v), 1);
  EXPECT_EXIT(*static_cast<volatile uint64_t*>(v) = 1, testing::KilledBySignal(SIGSEGV), "");
  pfree(pool, v);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);

  pmalloc_pool* again = pmalloc_create_pool("wr-fd2", 0, 0, kWrFlags);
  pfree(again, pzalloc(again, 64));
  ASSERT_EQ(pmalloc_protect_pool(again), 0);
  EXPECT_EQ(PoolDescriptors("wr-fd2").size(), 1u);
  EXPECT_EQ(pmalloc_destroy_pool(again), 0);
  EXPECT_TRUE(PoolDescriptors("wr-fd2").empty());
}

// make_pool_ro protects a pool that is not protected yet.
TEST(WriteRare, MakePoolRoProtects) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-ro", 0, 0, kWrFlags);
  auto* v = static_cast<uint64_t*>(pzalloc(pool, 64));
  ASSERT_EQ(pmalloc_make_pool_ro(pool), 0);
  EXPECT_EQ(pmalloc_is_protected(v), 1);
  EXPECT_EQ(pmalloc_wr_memset(v, 1, 8), -1);
  EXPECT_EQ(errno, EPERM);
  const uint64_t bad = 1;
  EXPECT_EQ(ProcMemWrite(v, &bad, sizeof(bad)), -1);
  EXPECT_TRUE(PoolDescriptors("wr-ro").empty());
}

// Private areas (privatised by fork, here) move onto the pool's memfd at protect; areas of a
// GROWABLE pool opened after a protect join the same memfd.
TEST(WriteRare, GrowableAndPrivatisedAreasJoinThePoolFile) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-grow", 0, 0, kWrFlags | PMALLOC_POOL_GROWABLE);
  auto* a = static_cast<uint64_t*>(pzalloc(pool, 64));
  *a = 1;
  ASSERT_EQ(InChild([] { return 0; }), 0);  // privatises a's area
  *a = 2;
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_EQ(*a, 2u);
  auto* b = static_cast<uint64_t*>(pmalloc(pool, 64 << 10));  // a new area
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(pmalloc_is_protected(b), 0);
  ASSERT_EQ(pmalloc_wr_assign_ptr(b, a), 0);  // plain store: not protected yet
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_EQ(PoolDescriptors("wr-grow").size(), 1u);
  const uint64_t v = 3;
  ASSERT_EQ(pmalloc_wr_memcpy(a, &v, 8), 0);
  ASSERT_EQ(pmalloc_wr_memcpy(b + 1, &v, 8), 0);
  EXPECT_EQ(*a, 3u);
  EXPECT_EQ(b[1], 3u);
  EXPECT_EQ(b[0], reinterpret_cast<uintptr_t>(a));
  const uint64_t bad = 9;
  EXPECT_EQ(ProcMemWrite(a, &bad, 8), -1);
  EXPECT_EQ(ProcMemWrite(b, &bad, 8), -1);
}

// Another thread reads /proc/self/maps all along thousands of updates: no line covering the
// object is ever writable (a window design, mprotect RW + store + RO, fails this).
TEST(WriteRare, NoWritableMappingDuringUpdates) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-maps", 0, 0, kWrFlags);
  auto* c = static_cast<Config*>(pzalloc(pool, sizeof(Config)));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  std::atomic<bool> done{false};
  std::atomic<int> scans{0};
  std::atomic<int> writable{0};
  std::string seen;
  std::thread watcher([&] {
    while (!done.load()) {
      for (const std::string& p : PermsCovering(c)) {
        if (p.find('w') != std::string::npos) {
          if (writable.fetch_add(1) == 0) seen = p;
        }
      }
      scans.fetch_add(1);
    }
  });
  static const char* const kNames[] = {"a", "b"};
  for (int i = 0; i < 3000 || scans.load() < 50; ++i) {
    const uint64_t g = static_cast<uint64_t>(i);
    ASSERT_EQ(pmalloc_wr_memcpy(&c->generation, &g, sizeof(g)), 0);
    ASSERT_EQ(pmalloc_wr_assign_ptr(&c->name, kNames[i & 1]), 0);
    ASSERT_EQ(pmalloc_wr_memset(c->text, i & 0xff, sizeof(c->text)), 0);
  }
  done.store(true);
  watcher.join();
  EXPECT_EQ(writable.load(), 0) << "writable mapping seen: " << seen;
  EXPECT_GE(scans.load(), 50);
}

// Readers load a pointer that wr_assign_ptr keeps swapping: they only ever see one of the
// two values stored, never a mix of their bytes.
TEST(WriteRare, AssignPtrIsNeverTorn) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-torn", 0, 0, kWrFlags);
  auto** slot = static_cast<void**>(pzalloc(pool, 64));
  void* const kA = reinterpret_cast<void*>(uintptr_t{0x0123456789abcdef} & ~uintptr_t{7});
  void* const kB = reinterpret_cast<void*>(uintptr_t{0xfedcba9876543210});
  *slot = kA;
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  std::atomic<bool> done{false};
  std::atomic<long> torn{0};
  std::atomic<long> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      long n = 0;
      while (!done.load(std::memory_order_relaxed)) {
        void* v = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
        if (v != kA && v != kB) torn.fetch_add(1);
        ++n;
      }
      reads.fetch_add(n);
    });
  }
  for (int i = 0; i < 5000; ++i) {
    ASSERT_EQ(pmalloc_wr_assign_ptr(slot, (i & 1) ? kA : kB), 0);
  }
  done.store(true);
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(reads.load(), 5000);
}

// Concurrent writers of one pool are serialized: each memcpy lands whole.
TEST(WriteRare, ConcurrentWritersSerialized) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-writers", 0, 0, kWrFlags);
  auto* block = static_cast<unsigned char*>(pzalloc(pool, 8192));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      std::vector<unsigned char> src(8192, static_cast<unsigned char>(t + 1));
      for (int i = 0; i < 300; ++i) {
        if (pmalloc_wr_memcpy(block, src.data(), src.size()) != 0) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (size_t i = 1; i < 8192; ++i) ASSERT_EQ(block[i], block[0]) << i;
}

TEST(WriteRare, SealedPoolStillWritableThroughWr) {
  if (!HasMseal()) GTEST_SKIP() << "no mseal(2) on this kernel";
  pmalloc_pool* pool = pmalloc_create_pool("wr-sealed", 0, 0, kWrFlags);
  auto* v = static_cast<uint64_t*>(pzalloc(pool, 64));
  ASSERT_EQ(pmalloc_seal_pool(pool), 0);
  void* page = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(v) & ~uintptr_t{4095});
  EXPECT_EQ(mprotect(page, 4096, PROT_READ | PROT_WRITE), -1);
  EXPECT_EQ(errno, EPERM);
  const uint64_t x = 77;
  ASSERT_EQ(pmalloc_wr_memcpy(v, &x, 8), 0);
  ASSERT_EQ(pmalloc_wr_assign_ptr(v + 1, v), 0);
  EXPECT_EQ(v[0], 77u);
  EXPECT_EQ(v[1], reinterpret_cast<uintptr_t>(v));
  const uint64_t bad = 1;
  EXPECT_EQ(ProcMemWrite(v, &bad, 8), -1);
  EXPECT_EXIT(*static_cast<volatile uint64_t*>(v) = 1, testing::KilledBySignal(SIGSEGV), "");
  // A forked child cannot be given its own copy of sealed pages: EPERM there, rather than an
  // update of the parent's.
  EXPECT_EQ(InChild([&] {
              const uint64_t y = 88;
              return pmalloc_wr_memcpy(v, &y, 8) == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
  EXPECT_EQ(v[0], 77u);
  ASSERT_EQ(pmalloc_wr_memcpy(v, &x, 8), 0);  // the parent keeps its write path
  ASSERT_EQ(pmalloc_make_pool_ro(pool), 0);
  EXPECT_EQ(pmalloc_wr_memcpy(v, &x, 8), -1);
  EXPECT_EQ(errno, EPERM);
}

// After fork, parent and child update the same object through wr_*; neither sees the
// other's value. A pipe orders it: the child writes and waits, the parent writes, the child
// checks its value is still there.
TEST(WriteRare, ForkKeepsParentAndChildApart) {
  pmalloc_pool* pool = pmalloc_create_pool("wr-fork", 0, 0, kWrFlags);
  auto* v = static_cast<uint64_t*>(pzalloc(pool, 64));
  *v = 1;
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  int to_parent[2], to_child[2];
  ASSERT_EQ(pipe(to_parent), 0);
  ASSERT_EQ(pipe(to_child), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    const uint64_t mine = 100;
    if (pmalloc_wr_memcpy(v, &mine, 8) != 0) _exit(2);
    if (write(to_parent[1], "x", 1) != 1) _exit(3);
    char ch;
    if (read(to_child[0], &ch, 1) != 1) _exit(4);
    if (*v != 100) _exit(5);
    if (pmalloc_wr_assign_ptr(v + 1, v) != 0 || v[1] != reinterpret_cast<uintptr_t>(v)) _exit(6);
    uint64_t bad = 1;
    if (ProcMemWrite(v, &bad, 8) != -1) _exit(7);
    _exit(0);
  }
  ASSERT_GT(pid, 0);
  char ch;
  ASSERT_EQ(read(to_parent[0], &ch, 1), 1);
  EXPECT_EQ(*v, 1u) << "the child's update reached the parent";
  const uint64_t ours = 200;
  ASSERT_EQ(pmalloc_wr_memcpy(v, &ours, 8), 0);
  ASSERT_EQ(write(to_child[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  EXPECT_EQ(*v, 200u);
  EXPECT_EQ(v[1], 0u) << "the child's assign reached the parent";
  EXPECT_EQ(PoolDescriptors("wr-fork").size(), 1u);
}

// Lockdown locks write-rare pools like any other, keeping their memfd (in a child: lockdown
// is process-wide).
TEST(WriteRare, LockdownKeepsWritePath) {
  const int rc = InChild([] {
    pmalloc_pool* pool = pmalloc_create_pool("wr-lockdown", 0, 0, PMALLOC_POOL_WRITE_RARE);
    auto* v = static_cast<uint64_t*>(pzalloc(pool, 64));
    if (pmalloc_lockdown(0) != 0) return 2;
    if (pmalloc_is_protected(v) != 1) return 3;
    const uint64_t x = 5;
    if (pmalloc_wr_memcpy(v, &x, 8) != 0 || *v != 5) return 4;
    const uint64_t bad = 1;
    if (ProcMemWrite(v, &bad, 8) != -1) return 5;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

}  // namespace
