// Races between pool users and pmalloc_lockdown() (issue 9). Lockdown is process-wide, so
// every test runs in a forked child and reports through its exit status. Labelled
// `concurrency` (tests/core/CMakeLists.txt): the TSan run picks them up.
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

// Lockdowns at 200-1000 us intervals (the spacing of issue 9's reproduction).
void LockdownRepeatedly(int times) {
  for (int i = 0; i < times; ++i) {
    (void)pmalloc_lockdown(0);
    usleep(200 + static_cast<useconds_t>((i * 7919) % 800));
  }
}

// pstrdup and pzalloc initialise the block before another thread's lockdown can protect it:
// each call returns a complete block or fails cleanly, and never faults inside pmalloc.
TEST(Concurrency, StrdupAndZallocRacingLockdown) {
  const int code = InChild([] {
    pmalloc_pool* pool = pmalloc_create_pool("race-init", 0, 0, PMALLOC_POOL_GROWABLE);
    if (pool == nullptr) return 10;
    const std::string text(3000, 's');
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::thread strdup_thread([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        const char* copy = pstrdup(pool, text.c_str());
        if (copy != nullptr && text != copy) bad.fetch_add(1);
      }
    });
    std::thread zalloc_thread([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        void* scratch = pmalloc(pool, 2000);
        if (scratch != nullptr) pfree(pool, scratch);  // dirty block, reused by pzalloc
        auto* z = static_cast<const unsigned char*>(pzalloc(pool, 2000));
        if (z == nullptr) continue;
        for (size_t i = 0; i < 2000; ++i) {
          if (z[i] != 0) {
            bad.fetch_add(1);
            break;
          }
        }
      }
    });
    LockdownRepeatedly(300);
    stop = true;
    strdup_thread.join();
    zalloc_thread.join();
    return bad.load() == 0 ? 0 : 11;
  });
  EXPECT_EQ(code, 0) << "128 + signal, or the child's failure code";
}

}  // namespace
