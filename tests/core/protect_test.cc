// Protection, sealing, lockdown and fork. Every protection claim is checked by observing
// the fault (death tests run the statement in a child process) or the errno.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

pmalloc_stats Stats(pmalloc_pool* p) {
  pmalloc_stats s{};
  EXPECT_EQ(pmalloc_pool_stats(p, &s), 0);
  return s;
}

void* PageOf(const void* p) {
  return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t{4095});
}

// Runs fn in a forked child; returns its exit status (as from waitpid).
int InChild(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

bool HasMseal() {
  void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const bool ok = syscall(462, p, 4096, 0) == 0 || errno != ENOSYS;
  return ok;  // the page is left mapped (maybe sealed) on purpose
}

TEST(Protect, WriteFaultsReadWorks) {
  pmalloc_pool* pool = pmalloc_create_pool("ro", 0, 0, PMALLOC_POOL_MANUAL);
  int* a = static_cast<int*>(pmalloc(pool, sizeof(int) * 100));
  char* s = pstrdup(pool, "read me");
  for (int i = 0; i < 100; ++i) a[i] = i;
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_EQ(pmalloc_is_protected(a), 1);
  EXPECT_EQ(Stats(pool).is_protected, 1);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a[i], i);
  EXPECT_STREQ(s, "read me");
  EXPECT_EXIT(a[0] = 42, testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(a[99] = 42, testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(s[3] = 'X', testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(memset(a, 0, 4), testing::KilledBySignal(SIGSEGV), "");
}

TEST(Protect, NotGrowableRefusesNewAllocations) {
  pmalloc_pool* pool = pmalloc_create_pool("fixed", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pmalloc(pool, 16), nullptr);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  errno = 0;
  EXPECT_EQ(pmalloc(pool, 16), nullptr);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(pmalloc_prealloc(pool, 16), -1);
  EXPECT_EQ(errno, EPERM);
}

TEST(Protect, GrowableOpensFreshArea) {
  pmalloc_pool* pool =
      pmalloc_create_pool("grow", 1 << 20, 0, PMALLOC_POOL_GROWABLE | PMALLOC_POOL_MANUAL);
  char* before = static_cast<char*>(pmalloc(pool, 64));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  char* after = static_cast<char*>(pmalloc(pool, 64));
  ASSERT_NE(after, nullptr);
  memset(after, 1, 64);  // writable
  EXPECT_EQ(Stats(pool).areas, 2u);
  EXPECT_EQ(Stats(pool).is_protected, 0);
  EXPECT_EQ(pmalloc_is_protected(before), 1);
  EXPECT_EQ(pmalloc_is_protected(after), 0);
  // The relinquished rest of the first area is never handed out again.
  EXPECT_NE(PageOf(after), PageOf(before));
  EXPECT_EXIT(before[0] = 1, testing::KilledBySignal(SIGSEGV), "");
}

TEST(Protect, FreeAfterProtectOnlyAccounts) {
  pmalloc_pool* pool = pmalloc_create_pool("leaky", 0, 0, PMALLOC_POOL_GROWABLE);
  char* p = static_cast<char*>(pmalloc(pool, 200));
  strcpy(p, "kept");
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  pfree(pool, p);
  pmalloc_stats s = Stats(pool);
  EXPECT_EQ(s.live_allocs, 0u);
  EXPECT_GE(s.freed_after_protect_bytes, 200u);
  EXPECT_STREQ(p, "kept");  // not reused, not written
  void* q = pmalloc(pool, 200);
  EXPECT_NE(q, p);
  pfree(pool, q);
  EXPECT_DEATH(pfree(pool, p), "double free of 0x[0-9a-f]+ in pool 'leaky'");
  // Destroy is allowed: memory freed after protect counts as released.
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
  EXPECT_EXIT((void)*static_cast<volatile char*>(p), testing::KilledBySignal(SIGSEGV), "");
}

TEST(Protect, MprotectBackToWritableIsStillPossibleUnsealed) {
  // Documents the difference sealing makes: without mseal an attacker who can call
  // mprotect can undo protection.
  pmalloc_pool* pool = pmalloc_create_pool("unsealed", 0, 0, PMALLOC_POOL_MANUAL);
  char* p = static_cast<char*>(pmalloc(pool, 16));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_EQ(mprotect(PageOf(p), 4096, PROT_READ | PROT_WRITE), 0);
}

TEST(Seal, MprotectFailsAndDestroyIsRefused) {
  if (!HasMseal()) GTEST_SKIP() << "kernel without mseal(2)";
  pmalloc_pool* pool = pmalloc_create_pool("sealed", 0, 0, PMALLOC_POOL_MANUAL);
  char* p = static_cast<char*>(pmalloc(pool, 16));
  strcpy(p, "sealed");
  ASSERT_EQ(pmalloc_seal_pool(pool), 0);
  pmalloc_stats s = Stats(pool);
  EXPECT_EQ(s.is_sealed, 1);
  EXPECT_EQ(s.is_protected, 1);
  errno = 0;
  EXPECT_EQ(mprotect(PageOf(p), 4096, PROT_READ | PROT_WRITE), -1);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(munmap(PageOf(p), 4096), -1);
  EXPECT_EQ(errno, EPERM);
  pfree(pool, p);
  errno = 0;
  EXPECT_EQ(pmalloc_destroy_pool(pool), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_STREQ(p, "sealed");
  EXPECT_EXIT(p[0] = 'X', testing::KilledBySignal(SIGSEGV), "");
}

// Sealing an empty pool seals the pool: is_sealed says so and destroy is refused; a
// non-growable one never allocates again (issue 9.8).
TEST(Seal, EmptyPoolIsSealed) {
  if (!HasMseal()) GTEST_SKIP() << "kernel without mseal(2)";
  pmalloc_pool* pool = pmalloc_create_pool("sealed-empty", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_EQ(pmalloc_seal_pool(pool), 0);
  pmalloc_stats s = Stats(pool);
  EXPECT_EQ(s.is_sealed, 1);
  EXPECT_EQ(s.is_protected, 1);
  errno = 0;
  EXPECT_EQ(pmalloc(pool, 16), nullptr);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(pmalloc_destroy_pool(pool), -1);
  EXPECT_EQ(errno, EPERM);
}

TEST(Lockdown, ProtectsAllButManualPools) {
  int status = InChild([] {
    pmalloc_pool* a = pmalloc_create_pool("ld-a", 0, 0, 0);
    pmalloc_pool* m = pmalloc_create_pool("ld-manual", 0, 0, PMALLOC_POOL_MANUAL);
    char* pa = static_cast<char*>(pmalloc(a, 32));
    char* pm = static_cast<char*>(pmalloc(m, 32));
    void* pd = pmalloc(pmalloc_default_pool(), 32);
    if (pmalloc_lockdown(0) != 0) return 10;
    if (pmalloc_is_protected(pa) != 1 || pmalloc_is_protected(pd) != 1) return 11;
    if (pmalloc_is_protected(pm) != 0) return 12;
    pm[0] = 1;  // manual pool still writable
    // The default pool is growable: new allocations work in a fresh writable area.
    char* fresh = static_cast<char*>(pmalloc(pmalloc_default_pool(), 32));
    if (fresh == nullptr) return 13;
    fresh[0] = 1;
    pa[0] = 1;  // must die here
    return 0;
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
}

// Lockdown closes the pools' memfds together (runs of consecutive numbers at once): every
// pool descriptor goes, and a descriptor of the program's that sits between two of them
// stays open.
TEST(Lockdown, ClosesEveryPoolDescriptorAndOnlyThose) {
  int status = InChild([] {
    auto pool_fds = [] {
      int n = 0;
      for (int fd = 0; fd < 4096; ++fd) {
        char link[64], target[256];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        const ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = '\0';
        if (strstr(target, "memfd:pmalloc:") != nullptr) ++n;
      }
      return n;
    };
    pmalloc_pool* first = pmalloc_create_pool("ld-fd-first", 0, 0, 0);
    if (pmalloc(first, 32) == nullptr) return 10;
    const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const int mine = fcntl(devnull, F_DUPFD_CLOEXEC, 512);  // among the pools' numbers
    if (mine < 0) return 11;
    close(devnull);
    for (int i = 0; i < 8; ++i) {
      pmalloc_pool* p = pmalloc_create_pool("ld-fd", 0, 0, 0);
      if (p == nullptr || pmalloc(p, 32) == nullptr) return 12;
    }
    const bool shared = pool_fds() >= 9;  // none under protect:mprotect
    if (pmalloc_lockdown(0) != 0) return 13;
    if (pool_fds() != 0) return 14;
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", mine);
    const ssize_t len = readlink(link, target, sizeof target - 1);
    if (len <= 0 || strncmp(target, "/dev/null", 9) != 0) return 15;
    return shared ? 0 : 16;
  });
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 16) GTEST_SKIP() << "no pool memfds (protect:mprotect)";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Lockdown, RejectsUnknownFlags) {
  errno = 0;
  EXPECT_EQ(pmalloc_lockdown(1u << 9), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Lockdown, SealFlagSealsPools) {
  if (!HasMseal()) GTEST_SKIP() << "kernel without mseal(2)";
  int status = InChild([] {
    pmalloc_pool* a = pmalloc_create_pool("ld-seal", 0, 0, 0);
    char* p = static_cast<char*>(pmalloc(a, 32));
    if (pmalloc_lockdown(PMALLOC_LOCKDOWN_SEAL) != 0) return 10;
    if (mprotect(PageOf(p), 4096, PROT_READ | PROT_WRITE) != -1 || errno != EPERM) return 11;
    pmalloc_stats s{};
    pmalloc_pool_stats(a, &s);
    return s.is_sealed == 1 ? 0 : 12;
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(LockdownRange, StaticPageBecomesReadOnly) {
  int status = InChild([] {
    void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    static_cast<char*>(page)[0] = 7;
    if (pmalloc_register_lockdown_range(static_cast<char*>(page) + 1, 4096, "x") != -1 ||
        errno != EINVAL)
      return 10;
    if (pmalloc_register_lockdown_range(page, 4096, "static") != 0) return 11;
    static_cast<char*>(page)[0] = 8;  // writable until lockdown
    if (pmalloc_lockdown(0) != 0) return 12;
    if (static_cast<char*>(page)[0] != 8) return 13;
    static_cast<char*>(page)[0] = 9;  // must die
    return 0;
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
}

TEST(Fork, ChildWritesDoNotReachParent) {
  pmalloc_pool* pool = pmalloc_create_pool("fork-rw", 0, 0, PMALLOC_POOL_MANUAL);
  int* v = static_cast<int*>(pmalloc(pool, sizeof(int)));
  *v = 1;
  int status = InChild([v, pool] {
    *v = 2;
    int* more = static_cast<int*>(pmalloc(pool, sizeof(int)));  // pool lock usable
    if (more == nullptr) return 10;
    *more = 3;
    return *v == 2 ? 0 : 11;
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(*v, 1);
}

TEST(Fork, ProtectedPoolStaysProtectedInChild) {
  pmalloc_pool* pool = pmalloc_create_pool("fork-ro", 0, 0, PMALLOC_POOL_MANUAL);
  int* v = static_cast<int*>(pmalloc(pool, sizeof(int)));
  *v = 5;
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  int status = InChild([v] {
    if (*v != 5) return 10;
    *v = 6;
    return 0;
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
}

// After a sealed lockdown, later lockdowns skip what is already sealed: they return 0 and
// still protect and seal what is new, in the process and in a forked child (issue 9.4).
TEST(Lockdown, RepeatedSealedLockdownSucceeds) {
  if (!HasMseal()) GTEST_SKIP() << "kernel without mseal(2)";
  int status = InChild([] {
    void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pmalloc_register_lockdown_range(page, 4096, "sealed-static") != 0) return 10;
    pmalloc_pool* pool = pmalloc_default_pool();
    if (pmalloc(pool, 64) == nullptr) return 11;
    if (pmalloc_lockdown(PMALLOC_LOCKDOWN_SEAL) != 0) return 12;
    void* later = pmalloc(pool, 64);  // GROWABLE: a fresh area
    if (later == nullptr) return 13;
    if (pmalloc_lockdown(PMALLOC_LOCKDOWN_SEAL) != 0) return 14;
    if (pmalloc_lockdown(0) != 0) return 15;
    if (Stats(pool).is_sealed != 1 || pmalloc_is_protected(later) != 1) return 16;
    const int child = InChild([pool] {
      if (pmalloc(pool, 64) == nullptr) return 20;
      if (pmalloc_lockdown(PMALLOC_LOCKDOWN_SEAL) != 0) return 21;
      return pmalloc_lockdown(0) == 0 ? 0 : 22;
    });
    if (!WIFEXITED(child)) return 30;
    return WEXITSTATUS(child);
  });
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
