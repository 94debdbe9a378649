// Races between pool users and pmalloc_lockdown() (issue 9). Lockdown is process-wide: each
// test uses pools of its own (CTest also runs each test in its own process), and the
// tests that need a fresh process run in a forked child and report through its exit
// status. Labelled `concurrency` (tests/core/CMakeLists.txt): the TSan run picks them up.
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

// Runs fn in a forked child; returns its exit code, or 128 + the signal that killed it.
int InChild(const std::function<int()>& fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// TSan counts protect:shared's mmap over the area as a write, so every access racing it
// (a read of a pool block, the writer's store that these tests race on purpose) is a report.
// Under TSan the tests run only in the protect:mprotect entry (CTest:
// race_test.Concurrency.protect_mprotect); the default and ASan builds run both modes.
#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN()                                            \
  if (getenv("PMALLOC_CONF") == nullptr ||                           \
      strstr(getenv("PMALLOC_CONF"), "protect:mprotect") == nullptr) \
  GTEST_SKIP() << "TSan reports any access racing protect:shared's remap"
#else
#define SKIP_UNDER_TSAN() (void)0
#endif

// Lockdowns at 200-1000 us intervals (the spacing of issue 9's reproduction).
void LockdownRepeatedly(int times) {
  for (int i = 0; i < times; ++i) {
    (void)pmalloc_lockdown(0);
    usleep(200 + static_cast<useconds_t>((i * 7919) % 800));
  }
}

// pstrdup and pzalloc initialise the block before another thread's lockdown can protect it:
// each call returns a complete block or fails cleanly, and never faults inside pmalloc.
// Not in a forked child: under TSan, jemalloc's mutexes re-initialised after fork are
// reported as a double lock as soon as two threads allocate in the child.
TEST(Concurrency, StrdupAndZallocRacingLockdown) {
  SKIP_UNDER_TSAN();
  const int code = [] {
    pmalloc_pool* pool = pmalloc_create_pool("race-init", 0, 0, PMALLOC_POOL_GROWABLE);
    if (pool == nullptr) return 10;
    const std::string text(3000, 's');
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::thread strdup_thread([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        char* copy = pstrdup(pool, text.c_str());
        if (copy == nullptr) continue;
        if (text != copy) bad.fetch_add(1);
        // Freed, so the loop's memory stays bounded: kept, it grew by GBs per second when a
        // busy machine slowed the lockdowns down (18 GiB peak seen with two runs at once).
        pfree(pool, copy);
      }
    });
    std::thread zalloc_thread([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        void* scratch = pmalloc(pool, 2000);
        if (scratch != nullptr) pfree(pool, scratch);  // dirty block, reused by pzalloc
        auto* z = static_cast<unsigned char*>(pzalloc(pool, 2000));
        if (z == nullptr) continue;
        for (size_t i = 0; i < 2000; ++i) {
          if (z[i] != 0) {
            bad.fetch_add(1);
            break;
          }
        }
        pfree(pool, z);
      }
    });
    LockdownRepeatedly(300);
    stop = true;
    strdup_thread.join();
    zalloc_thread.join();
    return bad.load() == 0 ? 0 : 11;
  }();
  EXPECT_EQ(code, 0);
}

// The store-versus-lockdown race of issue 9.3. A writer thread stores an increasing counter
// into protectable memory and records each value after its store returned; its first
// store after the memory became read-only faults, and the handler below ends the thread
// (any other fault kills the child). Once lockdown returned and the writer stopped, the
// memory must hold the last recorded value: a completed store is never lost, in either
// protect mode (the CTest entry race_test.protect_mprotect runs these again under
// PMALLOC_CONF=protect:mprotect).
thread_local sigjmp_buf writer_env;
thread_local volatile sig_atomic_t is_writer = 0;

void OnWriterFault(int sig) {
  if (is_writer) siglongjmp(writer_env, 1);
  signal(sig, SIG_DFL);  // not the writer: the fault repeats and kills the child
}

struct StoreRace {
  volatile uint64_t* slot;
  std::atomic<uint64_t> last{0};  // last value whose store returned
  std::atomic<bool> faulted{false};
};

void WriteUntilFault(StoreRace* race) {
  is_writer = 1;
  if (sigsetjmp(writer_env, 1) != 0) {
    race->faulted.store(true);
    return;
  }
  for (uint64_t i = 1;; ++i) {
    *race->slot = i;
    race->last.store(i, std::memory_order_release);
  }
}

// Runs one round on `slot`: returns 0 when the last completed store survived lockdown.
int StoreDuringLockdown(volatile uint64_t* slot) {
  StoreRace race;
  race.slot = slot;
  std::thread writer(WriteUntilFault, &race);
  while (race.last.load() < 1000) {
  }
  const int rc = pmalloc_lockdown(0);
  writer.join();
  if (rc != 0) return 20;
  if (!race.faulted.load()) return 21;
  return *slot == race.last.load() ? 0 : 22;
}

constexpr size_t kRaceBytes = size_t{4} << 20;  // 4 MiB touched: a long copy under shared

TEST(Concurrency, CompletedStoreIntoPoolSurvivesLockdown) {
  SKIP_UNDER_TSAN();
  const int code = InChild([] {
    for (int round = 0; round < 30; ++round) {
      const std::string name = "race-store-" + std::to_string(round);
      pmalloc_pool* pool = pmalloc_create_pool(name.c_str(), 0, 0, 0);
      if (pool == nullptr) return 10;
      if (round == 0) signal(SIGSEGV, OnWriterFault);  // after pmalloc's own handler
      auto* block = static_cast<char*>(pmalloc(pool, kRaceBytes));
      if (block == nullptr) return 11;
      memset(block, 1, kRaceBytes);
      // The first page: copied first by protect:shared, so the longest time before remap.
      const int rc = StoreDuringLockdown(reinterpret_cast<volatile uint64_t*>(block));
      if (rc != 0) return rc;
    }
    return 0;
  });
  EXPECT_EQ(code, 0) << "22: a completed store was lost; 128 + signal: crash";
}

// The same for a registered static range: a range is protected once per process, so each
// round is its own child.
TEST(Concurrency, CompletedStoreIntoStaticRangeSurvivesLockdown) {
  SKIP_UNDER_TSAN();
  for (int round = 0; round < 20; ++round) {
    const int code = InChild([] {
      void* range =
          mmap(nullptr, kRaceBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (range == MAP_FAILED) return 10;
      memset(range, 1, kRaceBytes);
      if (pmalloc_register_lockdown_range(range, kRaceBytes, "race-static") != 0) return 11;
      pmalloc_pool* pool = pmalloc_create_pool("race-static", 0, 0, 0);  // installs handlers
      if (pool == nullptr) return 12;
      signal(SIGSEGV, OnWriterFault);
      return StoreDuringLockdown(static_cast<volatile uint64_t*>(range));
    });
    ASSERT_EQ(code, 0) << "round " << round << ": 22: a completed store was lost";
  }
}

}  // namespace
