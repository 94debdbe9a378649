// Fault reports (docs/fault-reports.md): a write to a protected pool prints one line naming
// the pool, the address, the allocation and the faulting function, and the process still
// dies by SIGSEGV; faults elsewhere reach the handler installed before pmalloc, silently.
// Each claim is observed in a child process (death tests, or fork/waitpid).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

// Death tests must fork without re-executing: the expected addresses are computed here.
class FaultReport : public testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "fast"); }
};

std::string Hex(const void* p) {
  char buf[32];
  snprintf(buf, sizeof(buf), "0x%llx",
           static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(p)));
  return buf;
}

// The distinctive function whose name the report must carry (static, hidden: the
// symbolizer reads .symtab, not just the dynamic symbol table).
__attribute__((noinline)) void ScribbleOnLockedPool(void* p) {
  *static_cast<volatile char*>(p) = 'X';
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void ReadFromPoolGuard(const void* p) {
  (void)*static_cast<const volatile char*>(p);
  asm volatile("" ::: "memory");
}

// Faults inside libc's memset: the report adds the caller.
__attribute__((noinline)) void MemsetIntoLockedPool(void* p, size_t n) {
  void* (*volatile fill)(void*, int, size_t) = memset;
  fill(p, 0, n);
  asm volatile("" ::: "memory");
}

pmalloc_pool* NewPool(const char* name) {
  pmalloc_pool* pool = pmalloc_create_pool(name, 0, 0, PMALLOC_POOL_MANUAL);
  EXPECT_NE(pool, nullptr);
  return pool;
}

constexpr char kBy[] = " by .*ScribbleOnLockedPool.* \\[pc 0x[0-9a-f]+\\]";
// ScribbleOnLockedPool is a leaf when optimised, so its caller (the test body) is named too;
// with a frame of its own (unoptimised builds) the line ends after the pc.
constexpr char kMaybeCaller[] = "( called from [^\n]+ \\[0x[0-9a-f]+\\])?\n$";

TEST_F(FaultReport, NamesPoolAllocationAndFunction) {
  pmalloc_pool* pool = NewPool("fr-live");
  ASSERT_NE(pmalloc(pool, 16), nullptr);  // so the block does not start the area
  char* block = static_cast<char*>(pmalloc(pool, 48));
  ASSERT_NE(block, nullptr);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  const std::string expected = "^pmalloc: write to protected pool 'fr-live' at " + Hex(block + 24) +
                               " \\(allocation " + Hex(block) + "\\+24, 48 bytes, live\\)" + kBy +
                               kMaybeCaller;
  EXPECT_EXIT(ScribbleOnLockedPool(block + 24), testing::KilledBySignal(SIGSEGV), expected);
}

TEST_F(FaultReport, FaultInLibcNamesCaller) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizer runtime interposes memset: the caller is its interceptor";
#endif
  pmalloc_pool* pool = NewPool("fr-memset");
  char* block = static_cast<char*>(pmalloc(pool, 4096));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  const std::string expected = "^pmalloc: write to protected pool 'fr-memset' at " + Hex(block) +
                               " \\(allocation " + Hex(block) +
                               "\\+0, 4096 bytes, live\\) by [^\n]* \\[pc 0x[0-9a-f]+\\] "
                               "called from .*MemsetIntoLockedPool.* \\[0x[0-9a-f]+\\]\n$";
  EXPECT_EXIT(MemsetIntoLockedPool(block, 4096), testing::KilledBySignal(SIGSEGV), expected);
}

TEST_F(FaultReport, FreedBlockIsReportedFree) {
  pmalloc_pool* pool = NewPool("fr-freed");
  char* block = static_cast<char*>(pmalloc(pool, 64));
  ASSERT_NE(pmalloc(pool, 16), nullptr);  // keeps the freed block from merging into the end
  pfree(pool, block);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  const std::string expected = "pool 'fr-freed' at " + Hex(block) + " \\(allocation " + Hex(block) +
                               "\\+0, 64 bytes, free\\)" + kBy;
  EXPECT_EXIT(ScribbleOnLockedPool(block), testing::KilledBySignal(SIGSEGV), expected);
}

TEST_F(FaultReport, NeverAllocatedSpaceOfTheArea) {
  pmalloc_pool* pool = NewPool("fr-tail");
  char* block = static_cast<char*>(pmalloc(pool, 32));
  ASSERT_NE(block, nullptr);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  char* tail = block + 4096;  // inside the 64 KiB area, beyond everything handed out
  const std::string expected = "pool 'fr-tail' at " + Hex(tail) +
                               " \\(never allocated, offset [0-9]+ of area 0x[0-9a-f]+, "
                               "65536 bytes\\)" +
                               kBy;
  EXPECT_EXIT(ScribbleOnLockedPool(tail), testing::KilledBySignal(SIGSEGV), expected);
}

TEST_F(FaultReport, GuardGapAfterArea) {
  pmalloc_pool* pool = NewPool("fr-guard");
  char* first = static_cast<char*>(pmalloc(pool, 32));  // the first block starts the area
  ASSERT_NE(first, nullptr);
  // The guard gap is reserved PROT_NONE space: even a read faults, protected pool or not.
  char* past = first + 65536 + 100;
  const std::string expected = "^pmalloc: read of guard gap after pool 'fr-guard' at " + Hex(past) +
                               " \\(100 bytes past the end of area " + Hex(first) +
                               ", 65536 bytes\\) by .*ReadFromPoolGuard";
  EXPECT_EXIT(ReadFromPoolGuard(past), testing::KilledBySignal(SIGSEGV), expected);
}

TEST_F(FaultReport, DestroyedPoolIsWindowWithoutPool) {
  pmalloc_pool* pool = NewPool("fr-gone");
  char* block = static_cast<char*>(pmalloc(pool, 32));
  pfree(pool, block);
  ASSERT_EQ(pmalloc_destroy_pool(pool), 0);
  const std::string expected = "^pmalloc: write to reserved pool window at " + Hex(block) +
                               " \\(no pool: destroyed or never used\\)" + kBy;
  EXPECT_EXIT(ScribbleOnLockedPool(block), testing::KilledBySignal(SIGSEGV), expected);
}

TEST_F(FaultReport, SealedPoolSaysSealed) {
  pmalloc_pool* pool = NewPool("fr-sealed");
  char* block = static_cast<char*>(pmalloc(pool, 32));
  if (pmalloc_seal_pool(pool) != 0) {
    ASSERT_EQ(errno, ENOSYS);
    GTEST_SKIP() << "no mseal on this kernel";
  }
  EXPECT_EXIT(ScribbleOnLockedPool(block), testing::KilledBySignal(SIGSEGV),
              "write to sealed pool 'fr-sealed' at " + Hex(block));
}

TEST_F(FaultReport, FaultInThreadIsReported) {
  pmalloc_pool* pool = NewPool("fr-thread");
  char* block = static_cast<char*>(pmalloc(pool, 40));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  const std::string expected = "^pmalloc: write to protected pool 'fr-thread' at " +
                               Hex(block + 8) + " \\(allocation " + Hex(block) +
                               "\\+8, 48 bytes, live\\)" + kBy + kMaybeCaller;
  EXPECT_EXIT(std::thread([&] { ScribbleOnLockedPool(block + 8); }).join(),
              testing::KilledBySignal(SIGSEGV), expected);
}

// The report changes nothing about how the process dies: the wait status (signal, core
// flag) of a pool fault equals that of a plain write to a read-only page.
TEST_F(FaultReport, WaitStatusSameAsPlainFault) {
  pmalloc_pool* pool = NewPool("fr-status");
  char* block = static_cast<char*>(pmalloc(pool, 16));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  void* page = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(page, MAP_FAILED);
  auto status_of = [](void* target) {
    const pid_t pid = fork();
    if (pid == 0) {
      const struct rlimit no_core = {0, 0};  // same core policy for both, no files left
      setrlimit(RLIMIT_CORE, &no_core);
      const int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, STDERR_FILENO);
      ScribbleOnLockedPool(target);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  };
  const int pool_status = status_of(block);
  EXPECT_TRUE(WIFSIGNALED(pool_status));
  EXPECT_EQ(WTERMSIG(pool_status), SIGSEGV);
  EXPECT_EQ(pool_status, status_of(page));
  munmap(page, 4096);
}

// Modes of fault_report_helper run in a fresh process, so "installed before pmalloc" is
// real (this test process installed pmalloc's handler long ago).
[[noreturn]] void RunHelper(const char* mode) {
  execl(FAULT_REPORT_HELPER, FAULT_REPORT_HELPER, mode, static_cast<char*>(nullptr));
  _exit(127);
}

// The library preloaded into a program that does not link it installs the handler too;
// linked and preloaded at once, it is one library with one handler: one report.
[[noreturn]] void RunPreloaded(const char* program, const char* mode) {
  setenv("LD_PRELOAD", PMALLOC_LIBRARY, 1);
  execl(program, program, mode, static_cast<char*>(nullptr));
  _exit(127);
}

TEST_F(FaultReport, PreloadedLibraryReports) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitized library cannot be preloaded into an uninstrumented program";
#endif
  EXPECT_EXIT(RunPreloaded(FAULT_REPORT_PRELOADED, nullptr), testing::KilledBySignal(SIGSEGV),
              "^pmalloc: write to protected pool 'preloaded' at 0x[0-9a-f]+ \\(allocation "
              "0x[0-9a-f]+\\+0, 32 bytes, live\\) by .*PreloadedScribble[^\n]*\n$");
  EXPECT_EXIT(RunPreloaded(FAULT_REPORT_HELPER, "pool-prev-siginfo"), testing::ExitedWithCode(42),
              "^pmalloc: write to protected pool 'helper' [^\n]*\n$");
}

TEST_F(FaultReport, PoolFaultReportsThenChainsToPreviousHandler) {
  EXPECT_EXIT(RunHelper("pool-prev-siginfo"), testing::ExitedWithCode(42),
              "^pmalloc: write to protected pool 'helper' at 0x[0-9a-f]+ \\(allocation "
              "0x[0-9a-f]+\\+0, 32 bytes, live\\) by .*HelperScribble.*\n$");
}

TEST_F(FaultReport, NonPoolFaultReachesPreviousSiginfoHandlerSilently) {
  EXPECT_EXIT(RunHelper("nonpool-prev-siginfo"), testing::ExitedWithCode(42), "^$");
}

TEST_F(FaultReport, NonPoolFaultReachesPreviousPlainHandlerSilently) {
  EXPECT_EXIT(RunHelper("nonpool-prev-plain"), testing::ExitedWithCode(43), "^$");
}

TEST_F(FaultReport, NonPoolFaultWithoutHandlerDiesSilently) {
  EXPECT_EXIT(RunHelper("nonpool-default"), testing::KilledBySignal(SIGSEGV), "^$");
}

TEST_F(FaultReport, NonPoolFaultWithIgnoredSignalStillDies) {
  EXPECT_EXIT(RunHelper("nonpool-ignored"), testing::KilledBySignal(SIGSEGV), "^$");
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitizer builds have no libc face: a handler installed after pmalloc's replaces it.
TEST_F(FaultReport, HandlerInstalledAfterPmallocWins) {
  EXPECT_EXIT(RunHelper("pool-after"), testing::ExitedWithCode(44), "^$");
}
#else
// The face keeps pmalloc's handler first (preload/signals.cc): a handler the program
// installs later is chained to, after the report, for a pool write...
TEST_F(FaultReport, HandlerInstalledAfterPmallocStillGetsTheReport) {
  EXPECT_EXIT(RunHelper("pool-after"), testing::ExitedWithCode(44),
              "^pmalloc: write to protected pool 'helper' at 0x[0-9a-f]+ \\(allocation "
              "0x[0-9a-f]+\\+0, 32 bytes, live\\) by .*HelperScribble.*\n$");
  EXPECT_EXIT(RunHelper("pool-after-signal"), testing::ExitedWithCode(43),
              "^pmalloc: write to protected pool 'helper' [^\n]*\n$");
  EXPECT_EXIT(RunHelper("pool-after-default"), testing::KilledBySignal(SIGSEGV),
              "^pmalloc: write to protected pool 'helper' [^\n]*\n$");
}

// ... and gets a fault that is not pmalloc's silently.
TEST_F(FaultReport, HandlerInstalledAfterPmallocGetsOtherFaults) {
  EXPECT_EXIT(RunHelper("null-after"), testing::ExitedWithCode(44), "^$");
  EXPECT_EXIT(RunHelper("null-after-signal"), testing::ExitedWithCode(43), "^$");
}

// sigaction(SIGSEGV, NULL, &old) and signal() report the program's own handlers.
TEST_F(FaultReport, SigactionReportsTheProgramsHandler) {
  EXPECT_EXIT(RunHelper("query-after"), testing::ExitedWithCode(45), "^$");
}
#endif

TEST_F(FaultReport, FaultInPreviousHandlerDoesNotLoop) {
  // One report, then the chained handler faults: killed by SIGSEGV, no second report.
  EXPECT_EXIT(RunHelper("pool-prev-faults"), testing::KilledBySignal(SIGSEGV),
              "^pmalloc: write to protected pool 'helper' [^\n]*\n$");
}

TEST_F(FaultReport, SentSignalKeepsItsMeaning) {
  EXPECT_EXIT(RunHelper("raise"), testing::KilledBySignal(SIGSEGV), "^$");
  EXPECT_EXIT(RunHelper("raise-prev-plain"), testing::ExitedWithCode(43), "^$");
}

TEST_F(FaultReport, SmallAlternateStackGetsReportWithoutSymbols) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "instrumented code needs more than the 4 KiB alternate stack under test";
#endif
  EXPECT_EXIT(RunHelper("pool-small-altstack"), testing::KilledBySignal(SIGSEGV),
              "^pmalloc: write to protected pool 'helper' at 0x[0-9a-f]+ \\(allocation "
              "0x[0-9a-f]+\\+0, 32 bytes, live\\) by \\? \\[pc 0x[0-9a-f]+\\]\n$");
}

TEST_F(FaultReport, StackOverflowStillDiesBySigsegv) {
  EXPECT_EXIT(RunHelper("stack-overflow"), testing::KilledBySignal(SIGSEGV), "^$");
  EXPECT_EXIT(RunHelper("stack-overflow-altstack"), testing::KilledBySignal(SIGSEGV), "^$");
}

}  // namespace
