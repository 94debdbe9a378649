// <pmalloc/testing.h>: each assertion passes on locked memory, and fails (checked with
// gtest-spi) with a message naming the pool or range and the first unlocked byte; write
// faults are told apart from other deaths.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"
#include "pmalloc/testing.h"

namespace {

struct Config {
  int port;
  int max_sessions;
  char name[24];
};

// A protected pool holding a Config, and a writable one.
Config* LockedConfig() {
  pmalloc_pool* pool = pmalloc_create_pool("testlib-locked", 0, 0, PMALLOC_POOL_MANUAL);
  if (pool == nullptr) return nullptr;
  auto* cfg = static_cast<Config*>(pzalloc(pool, sizeof(Config)));
  if (cfg == nullptr) return nullptr;
  cfg->port = 443;
  return pmalloc_protect_pool(pool) == 0 ? cfg : nullptr;
}
Config* OpenConfig() {
  pmalloc_pool* pool = pmalloc_create_pool("testlib-open", 0, 0, PMALLOC_POOL_MANUAL);
  return pool == nullptr ? nullptr : static_cast<Config*>(pzalloc(pool, sizeof(Config)));
}
std::string Addr(const void* p) {
  std::ostringstream s;
  s << p;
  return s.str();
}

TEST(TestingLib, LockedPoolPasses) {
  Config* cfg = LockedConfig();
  ASSERT_NE(cfg, nullptr);
  EXPECT_LOCKED(cfg, sizeof(*cfg));
  ASSERT_LOCKED(&cfg->name[3], 4) << "streamed";
  EXPECT_LOCKED(cfg, 0);
  EXPECT_THAT(cfg, pmalloc::IsLockedMemory());
  EXPECT_THAT(std::make_pair(static_cast<const void*>(cfg), sizeof(*cfg)),
              pmalloc::IsLockedMemory());
}

TEST(TestingLib, UnprotectedPoolFailsNamingPoolAndByte) {
  Config* cfg = OpenConfig();
  ASSERT_NE(cfg, nullptr);
  EXPECT_NONFATAL_FAILURE(EXPECT_LOCKED(cfg, sizeof(*cfg)), "in pool 'testlib-open'");
  EXPECT_NONFATAL_FAILURE(EXPECT_LOCKED(cfg, sizeof(*cfg)),
                          "first unlocked byte " + Addr(cfg) + " (offset 0");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(cfg, pmalloc::IsLockedMemory()),
                          "in pool 'testlib-open', which is writable");
}

TEST(TestingLib, RangeRunningOffALockedPoolFailsAtItsFirstUnlockedByte) {
  Config* cfg = LockedConfig();
  ASSERT_NE(cfg, nullptr);
  // The area (64 KiB) is followed by a guard gap: 1 MiB on is no pool memory.
  EXPECT_NONFATAL_FAILURE(EXPECT_LOCKED(cfg, size_t{1} << 20), "in no pmalloc pool");
}

TEST(TestingLib, HeapMemoryFails) {
  void* heap = malloc(32);
  EXPECT_NONFATAL_FAILURE(EXPECT_LOCKED(heap, 32),
                          Addr(heap) + " (offset 0 of 32 bytes at " + Addr(heap) +
                              ") is in no pmalloc pool and no registered lockdown range");
  free(heap);
}

Config* open_config = nullptr;
void AssertLockedOnOpenPool() {
  ASSERT_LOCKED(open_config, sizeof(Config));
  ADD_FAILURE() << "ASSERT_LOCKED did not return";
}

TEST(TestingLib, AssertLockedIsFatal) {
  open_config = OpenConfig();
  ASSERT_NE(open_config, nullptr);
  EXPECT_FATAL_FAILURE(AssertLockedOnOpenPool(), "in pool 'testlib-open'");
}

TEST(TestingLib, RegisteredRangeIsLockedAfterLockdown) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* range = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(range, MAP_FAILED);
  ASSERT_EQ(pmalloc_register_lockdown_range(range, page, "testlib-range"), 0);
  const char* name = nullptr;
  EXPECT_EQ(pmalloc_is_protected_range(range, &name), 0);
  EXPECT_STREQ(name, "testlib-range");
  EXPECT_NONFATAL_FAILURE(EXPECT_LOCKED(range, page),
                          "in registered lockdown range 'testlib-range', not protected yet");
  ASSERT_EQ(pmalloc_lockdown(0), 0);
  EXPECT_EQ(pmalloc_is_protected_range(range, nullptr), 1);
  EXPECT_LOCKED(range, page);
  EXPECT_WRITE_FAULTS(*static_cast<volatile char*>(range) = 1);
  errno = 0;
  EXPECT_EQ(pmalloc_is_protected_range(&page, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST(TestingLib, WriteToLockedPoolFaults) {
  Config* cfg = LockedConfig();
  ASSERT_NE(cfg, nullptr);
  EXPECT_WRITE_FAULTS(cfg->port = 80);
  ASSERT_WRITE_FAULTS({
    volatile char* name = cfg->name;
    name[1] = 'x';
  });
}

TEST(TestingLib, WriteFaultsFailsWhenTheStatementDoesNotFault) {
  Config* cfg = OpenConfig();
  ASSERT_NE(cfg, nullptr);
  EXPECT_NONFATAL_FAILURE(EXPECT_WRITE_FAULTS(cfg->port = 80), "exited with status 0");
}

TEST(TestingLib, WriteFaultsFailsOnOtherDeathsAndPrintsTheChildsStderr) {
  EXPECT_NONFATAL_FAILURE(EXPECT_WRITE_FAULTS(abort()), "not SIGSEGV");
  EXPECT_NONFATAL_FAILURE(EXPECT_WRITE_FAULTS({
                            fputs("child says hello\n", stderr);
                            raise(SIGSEGV);
                          }),
                          "without pmalloc's fault report");
  EXPECT_NONFATAL_FAILURE(EXPECT_WRITE_FAULTS({
                            fputs("child says hello\n", stderr);
                            _exit(3);
                          }),
                          "exited with status 3 (no fault); its stderr:\nchild says hello");
}

TEST(TestingLib, PoolSealed) {
  pmalloc_pool* open = pmalloc_create_pool("testlib-unsealed", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(open, nullptr);
  ASSERT_NE(pzalloc(open, 8), nullptr);
  EXPECT_NONFATAL_FAILURE(EXPECT_POOL_SEALED(open), "pool 'testlib-unsealed' (open) is not sealed");
  pmalloc_pool* sealed = pmalloc_create_pool("testlib-sealed", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(sealed, nullptr);
  ASSERT_NE(pzalloc(sealed, 8), nullptr);
  if (pmalloc_seal_pool(sealed) != 0 && errno == ENOSYS) GTEST_SKIP() << "no mseal";
  EXPECT_POOL_SEALED(sealed);
  ASSERT_POOL_SEALED(sealed);
}

}  // namespace
