// Protected pools against /proc/PID/mem and ptrace (docs/design.md §6). A
// FOLL_FORCE write (/proc/self/mem, ptrace POKEDATA) ignores PROT_READ on a private
// mapping, even a sealed one, but not on a read-only MAP_SHARED one: with protect:shared
// (the default) a protected area is such a mapping, so the write fails with EIO and the
// bytes stay.
//
// The ProtectMode.* tests run only under PMALLOC_CONF=protect:mprotect (a separate CTest
// entry, see CMakeLists.txt); everything else runs in the default mode.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"
#include "proc_mem_write.h"

namespace {

using pmalloc_test::MprotectMode;
using pmalloc_test::ProcMemWrite;

constexpr size_t kPage = 4096;

// The /proc/self/maps line whose range contains p, or "".
std::string MapsLine(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const uintptr_t lo = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    const uintptr_t hi = std::stoull(line.substr(line.find('-') + 1), nullptr, 16);
    if (a >= lo && a < hi) return line;
  }
  return "";
}

// The permission field ("r--s", "rw-p", ...) of p's mapping.
std::string Perms(const void* p) {
  const std::string line = MapsLine(p);
  const size_t sp = line.find(' ');
  return sp == std::string::npos ? "" : line.substr(sp + 1, 4);
}

pmalloc_stats Stats(pmalloc_pool* p) {
  pmalloc_stats s{};
  EXPECT_EQ(pmalloc_pool_stats(p, &s), 0);
  return s;
}

bool HasMseal() {
  void* p = mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return syscall(462, p, kPage, 0) == 0 || errno != ENOSYS;
}

TEST(ProcMem, WriteSucceedsBeforeProtectAndFailsAfter) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  pmalloc_pool* pool = pmalloc_create_pool("procmem", 0, 0, PMALLOC_POOL_MANUAL);
  int* a = static_cast<int*>(pmalloc(pool, sizeof(int) * 100));
  for (int i = 0; i < 100; ++i) a[i] = i;
  const int evil = 0x41414141;
  // Writable pool: /proc/self/mem writes land (so the check below can fail).
  ASSERT_EQ(ProcMemWrite(&a[1], &evil, sizeof(evil)), 4);
  EXPECT_EQ(a[1], evil);
  a[1] = 1;

  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  errno = 0;
  EXPECT_EQ(ProcMemWrite(&a[1], &evil, sizeof(evil)), -1);
  EXPECT_EQ(errno, EIO);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a[i], i);
  EXPECT_EQ(pmalloc_is_protected(a), 1);
  EXPECT_EQ(pmalloc_pool_of(a), pool);
  const pmalloc_stats s = Stats(pool);
  EXPECT_EQ(s.is_protected, 1);
  EXPECT_EQ(s.live_allocs, 1u);
  EXPECT_EQ(s.areas, 1u);
  // Still named for tools, now a read-only shared mapping.
  EXPECT_NE(MapsLine(a).find("/memfd:pmalloc:procmem"), std::string::npos) << MapsLine(a);
  EXPECT_EQ(Perms(a), "r--s");
  EXPECT_EXIT(a[0] = 42, testing::KilledBySignal(SIGSEGV), "");
  // The fault report still names the pool and the allocation.
  EXPECT_EXIT(a[3] = 42, testing::KilledBySignal(SIGSEGV),
              "write to protected pool 'procmem' at 0x[0-9a-f]+ \\(allocation");
}

TEST(ProcMem, SealedRejectsWritesAndMprotect) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  if (!HasMseal()) GTEST_SKIP() << "kernel without mseal(2)";
  pmalloc_pool* pool = pmalloc_create_pool("procmem-sealed", 0, 0, PMALLOC_POOL_MANUAL);
  char* p = pstrdup(pool, "sealed bytes");
  ASSERT_EQ(pmalloc_seal_pool(pool), 0);
  EXPECT_EQ(Stats(pool).is_sealed, 1);
  errno = 0;
  EXPECT_EQ(ProcMemWrite(p, "X", 1), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_STREQ(p, "sealed bytes");
  void* page = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) & ~(kPage - 1));
  errno = 0;
  EXPECT_EQ(mprotect(page, kPage, PROT_READ | PROT_WRITE), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EXIT(p[0] = 'X', testing::KilledBySignal(SIGSEGV), "");
}

// Many areas (default 64 KiB refill) keep every byte; each rejects /proc/self/mem writes.
TEST(ProcMem, ManyAreasKeepTheirBytes) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  pmalloc_pool* pool = pmalloc_create_pool("procmem-many", 0, 0, PMALLOC_POOL_MANUAL);
  std::vector<unsigned char*> blocks;
  for (int i = 0; i < 300; ++i) {
    const size_t n = 1000 + 37 * static_cast<size_t>(i);
    auto* b = static_cast<unsigned char*>(pmalloc(pool, n));
    ASSERT_NE(b, nullptr);
    for (size_t j = 0; j < n; ++j) b[j] = static_cast<unsigned char>(i * 7 + j);
    blocks.push_back(b);
  }
  ASSERT_GT(Stats(pool).areas, 4u);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  for (int i = 0; i < 300; ++i) {
    const size_t n = 1000 + 37 * static_cast<size_t>(i);
    for (size_t j = 0; j < n; ++j) {
      ASSERT_EQ(blocks[i][j], static_cast<unsigned char>(i * 7 + j)) << i << " " << j;
    }
    errno = 0;
    ASSERT_EQ(ProcMemWrite(blocks[i] + n - 1, "X", 1), -1) << i;
    ASSERT_EQ(errno, EIO);
  }
}

// A GROWABLE pool's new area is a writable shared mapping (of a fresh memfd: the first
// one's descriptor closed at protect) until the next protect, which makes only that area
// read-only.
TEST(ProcMem, GrowablePoolProtectsNewAreasToo) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  pmalloc_pool* pool =
      pmalloc_create_pool("procmem-grow", 0, 0, PMALLOC_POOL_GROWABLE | PMALLOC_POOL_MANUAL);
  char* first = pstrdup(pool, "first");
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  char* second = pstrdup(pool, "second");
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(Perms(second), "rw-s");
  ASSERT_EQ(ProcMemWrite(second, "S", 1), 1);  // writable area: lands
  EXPECT_STREQ(second, "Second");
  EXPECT_EQ(ProcMemWrite(first, "X", 1), -1);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  errno = 0;
  EXPECT_EQ(ProcMemWrite(second, "X", 1), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(ProcMemWrite(first, "X", 1), -1);
  EXPECT_STREQ(first, "first");
  EXPECT_STREQ(second, "Second");
  EXPECT_EQ(Perms(second), "r--s");
  EXPECT_NE(MapsLine(second).find("/memfd:pmalloc:procmem-grow"), std::string::npos);
  EXPECT_EQ(Stats(pool).is_protected, 1);
}

// pmalloc_lockdown moves pools the same way; registered ranges (statics) stay mprotected
// private pages, which /proc/self/mem can still write (documented, not hidden).
// Registered ranges (protected statics) move onto a read-only shared memfd mapping too,
// keeping every byte.
TEST(ProcMem, LockdownMovesPoolsAndRegisteredRanges) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  const pid_t pid = fork();
  if (pid == 0) {
    pmalloc_pool* pool = pmalloc_create_pool("procmem-lockdown", 0, 0, 0);
    char* p = pstrdup(pool, "pool");
    char* page = static_cast<char*>(
        mmap(nullptr, 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    strcpy(page, "static");
    strcpy(page + kPage, "second page");
    if (pmalloc_register_lockdown_range(page, 2 * kPage, "/some/dir/module.so") != 0) _exit(10);
    if (ProcMemWrite(page + 1, "T", 1) != 1 || strcmp(page, "sTatic") != 0) _exit(11);
    if (pmalloc_lockdown(0) != 0) _exit(12);
    if (ProcMemWrite(p, "X", 1) != -1 || errno != EIO || strcmp(p, "pool") != 0) _exit(13);
    if (Perms(p) != "r--s" || Perms(page) != "r--s") _exit(14);
    if (MapsLine(page).find("/memfd:pmalloc:static:module.so") == std::string::npos) _exit(15);
    if (ProcMemWrite(page, "X", 1) != -1 || errno != EIO) _exit(16);
    if (strcmp(page, "sTatic") != 0 || strcmp(page + kPage, "second page") != 0) _exit(17);
    if (pmalloc_lockdown(0) != 0 || strcmp(page, "sTatic") != 0) _exit(18);  // again: same
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Only touched pages are copied: an area that was handed out but never written stays
// sparse (mincore counts the pages in the new memfd's page cache).
TEST(ProcMem, SparseAreaStaysSparse) {
  constexpr size_t kArea = size_t{16} << 20;
  pmalloc_pool* pool = pmalloc_create_pool("procmem-sparse", kArea, 0, PMALLOC_POOL_MANUAL);
  char* p = static_cast<char*>(pmalloc(pool, kArea / 2));
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % kPage, 0u);
  p[0] = 1;
  p[1000 * kPage + 5] = 2;
  auto resident_pages = [p] {
    std::vector<unsigned char> vec(kArea / kPage);
    EXPECT_EQ(mincore(p, kArea, vec.data()), 0);
    size_t n = 0;
    for (unsigned char v : vec) n += v & 1;
    return n;
  };
  // Large areas may be backed by transparent huge pages: a touch can make a whole 2 MiB
  // resident. What protect must not do is add to it (copy untouched pages).
  const size_t touched = resident_pages();
  ASSERT_GE(touched, 2u);
  ASSERT_LE(touched, 2u * 512);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_EQ(resident_pages(), touched);
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[1000 * kPage + 5], 2);
  EXPECT_EQ(p[500 * kPage], 0);
  EXPECT_EQ(p[kArea - 1], 0);
}

TEST(ProcMem, DestroyLeavesNoMapping) {
  pmalloc_pool* pool = pmalloc_create_pool("procmem-destroy", 0, 0, PMALLOC_POOL_MANUAL);
  char* p = pstrdup(pool, "gone");
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  pfree(pool, p);
  ASSERT_EQ(pmalloc_destroy_pool(pool), 0);
  EXPECT_EQ(Perms(p), "---p");
  EXPECT_EQ(MapsLine(p).find("memfd"), std::string::npos) << MapsLine(p);
  EXPECT_EQ(pmalloc_pool_of(p), nullptr);
  EXPECT_EXIT((void)*static_cast<volatile char*>(p), testing::KilledBySignal(SIGSEGV), "");
}

// A child shares the protected (read-only) pages instead of copying them: it reads the
// parent's bytes, cannot write them either way, and the parent is unaffected.
TEST(ProcMem, ForkedChildCannotWriteProtectedPool) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  pmalloc_pool* pool = pmalloc_create_pool("procmem-fork", 0, 0, PMALLOC_POOL_MANUAL);
  int* v = static_cast<int*>(pmalloc(pool, sizeof(int)));
  *v = 5;
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    if (*v != 5) _exit(10);
    const int evil = 6;
    if (ProcMemWrite(v, &evil, sizeof(evil)) != -1 || errno != EIO) _exit(11);
    if (*v != 5) _exit(12);
    *v = 6;  // must die here
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  EXPECT_EQ(*v, 5);
}

// ptrace(PTRACE_POKEDATA) writes with FOLL_FORCE too: a tracer can change a writable pool
// of its tracee but not a protected one.
TEST(ProcMem, PtracePokeFailsOnProtectedPool) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  pmalloc_pool* rw = pmalloc_create_pool("procmem-ptrace-rw", 0, 0, PMALLOC_POOL_MANUAL);
  pmalloc_pool* ro = pmalloc_create_pool("procmem-ptrace-ro", 0, 0, PMALLOC_POOL_MANUAL);
  auto* w = static_cast<long*>(pmalloc(rw, sizeof(long)));
  auto* r = static_cast<long*>(pmalloc(ro, sizeof(long)));
  *w = 1;
  *r = 2;
  ASSERT_EQ(pmalloc_protect_pool(ro), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    if (ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) _exit(20);
    raise(SIGSTOP);
    _exit((*w == 7 ? 0 : 1) | (*r == 2 ? 0 : 2));  // tracer wrote *w, not *r
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 20) GTEST_SKIP() << "ptrace not permitted";
  ASSERT_TRUE(WIFSTOPPED(status));
  EXPECT_EQ(ptrace(PTRACE_POKEDATA, pid, w, reinterpret_cast<void*>(7L)), 0);
  errno = 0;
  EXPECT_EQ(ptrace(PTRACE_POKEDATA, pid, r, reinterpret_cast<void*>(7L)), -1);
  EXPECT_EQ(errno, EIO);
  ASSERT_EQ(ptrace(PTRACE_CONT, pid, nullptr, nullptr), 0);
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Readers never see a hole or other bytes while their area is copied and remapped.
TEST(ProcMem, ReadersDuringProtectSeeTheSameBytes) {
  for (int round = 0; round < 5; ++round) {
    pmalloc_pool* pool = pmalloc_create_pool("procmem-readers", 0, 0, PMALLOC_POOL_MANUAL);
    std::vector<uint64_t*> blocks;
    for (int i = 0; i < 64; ++i) {  // 4 MiB in 64 areas
      auto* b = static_cast<uint64_t*>(pmalloc(pool, 60 << 10));
      ASSERT_NE(b, nullptr);
      for (size_t j = 0; j < (60 << 10) / 8; ++j) b[j] = (uint64_t{1} << 32) * i + j;
      blocks.push_back(b);
    }
    std::atomic<bool> done{false};
    std::atomic<long> bad{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 2; ++t) {
      readers.emplace_back([&, t] {
        size_t j = static_cast<size_t>(t) * 4099;
        while (!done.load(std::memory_order_relaxed)) {
          for (int i = 0; i < 64; ++i) {
            j = (j + 511) % ((60 << 10) / 8);
            const uint64_t want = (uint64_t{1} << 32) * i + j;
            if (reinterpret_cast<volatile uint64_t*>(blocks[i])[j] != want) ++bad;
          }
        }
      });
    }
    ASSERT_EQ(pmalloc_protect_pool(pool), 0);
    done = true;
    for (auto& r : readers) r.join();
    EXPECT_EQ(bad.load(), 0);
    if (!MprotectMode()) {
      EXPECT_EQ(ProcMemWrite(blocks[0], "X", 1), -1);
    }
  }
}

// Uses up every descriptor below a limit of 64; returns the last one opened.
int ExhaustDescriptors() {
  rlimit lim{64, 64};
  setrlimit(RLIMIT_NOFILE, &lim);
  int last = -1;
  for (int fd; (fd = open("/dev/null", O_RDONLY)) >= 0;) last = fd;
  return last;
}

// Protect of an area already on the pool's memfd needs no descriptor at all: one mprotect.
// Runs in the death test's child.
[[noreturn]] void ProtectWithoutDescriptors() {
  pmalloc_pool* pool = pmalloc_create_pool("procmem-nofd", 0, 0, PMALLOC_POOL_MANUAL);
  char* p = pstrdup(pool, "kept");
  const int last = ExhaustDescriptors();
  const int rc = pmalloc_protect_pool(pool);
  bool ok = rc == 0 && pmalloc_is_protected(p) == 1 && strcmp(p, "kept") == 0;
  close(last);  // one descriptor for /proc/self/mem
  ok = ok && ProcMemWrite(p, "X", 1) == -1 && errno == EIO && strcmp(p, "kept") == 0;
  _exit(ok ? 0 : 1);
}

TEST(ProcMem, ProtectNeedsNoDescriptor) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  EXPECT_EXIT(ProtectWithoutDescriptors(), testing::ExitedWithCode(0), "^$");
}

// Out of descriptors (RLIMIT_NOFILE) when the pool opens its first area: no memfd, so the
// area is private anonymous memory (one line says so); protect then cannot move it onto a
// memfd either, the pool is still protected with mprotect, and one more line says so.
[[noreturn]] void AllocateAndProtectWithoutDescriptors() {
  pmalloc_pool* pool = pmalloc_create_pool("procmem-nofd", 0, 0, PMALLOC_POOL_MANUAL);
  ExhaustDescriptors();
  char* p = pstrdup(pool, "kept");
  const int rc = pmalloc_protect_pool(pool);
  const bool ok = p != nullptr && rc == 0 && pmalloc_is_protected(p) == 1 && strcmp(p, "kept") == 0;
  _exit(ok ? 0 : 1);
}

TEST(ProcMem, NoDescriptorLeftFallsBackToMprotect) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  EXPECT_EXIT(AllocateAndProtectWithoutDescriptors(), testing::ExitedWithCode(0),
              "pmalloc: pool 'procmem-nofd': no memfd for its areas \\(errno 24\\): they are "
              "private memory, copied onto a memfd when protected\n"
              "pmalloc: pool 'procmem-nofd': cannot move to a shared mapping \\(errno 24\\): "
              "protected with mprotect only");
}

// PMALLOC_CONF=protect:mprotect keeps the old, cheaper path: still SIGSEGV on a store, but
// /proc/self/mem can write the private read-only page. Documents what the default buys.
TEST(ProtectMode, MprotectLeavesProcMemWritable) {
  if (!MprotectMode()) GTEST_SKIP() << "runs under PMALLOC_CONF=protect:mprotect";
  pmalloc_pool* pool = pmalloc_create_pool("procmem-mprotect", 0, 0, PMALLOC_POOL_MANUAL);
  char* p = pstrdup(pool, "private");
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_EQ(Perms(p), "r--p");
  EXPECT_EQ(MapsLine(p).find("memfd"), std::string::npos) << MapsLine(p);  // anonymous
  EXPECT_EQ(ProcMemWrite(p, "P", 1), 1);
  EXPECT_STREQ(p, "Private");
  // Registered ranges too stay private pages under protect:mprotect.
  EXPECT_EXIT(
      {
        char* page = static_cast<char*>(
            mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        strcpy(page, "range");
        if (pmalloc_register_lockdown_range(page, kPage, "range") != 0) _exit(10);
        if (pmalloc_lockdown(0) != 0) _exit(11);
        if (Perms(page) != "r--p") _exit(12);
        if (ProcMemWrite(page, "R", 1) != 1 || strcmp(page, "Range") != 0) _exit(13);
        _exit(0);
      },
      testing::ExitedWithCode(0), "");
  EXPECT_EXIT(p[0] = 'X', testing::KilledBySignal(SIGSEGV), "");
}

}  // namespace
