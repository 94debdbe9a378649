// Learn mode (core/learn.h) end to end: this binary runs under PMALLOC_CONF=learn:true with
// the face's system call wrappers and signal interposers compiled in (preload/CMakeLists.txt)
// and a counting write observer. Each test locks down inside a forked child (death test),
// so the tests do not lock each other's pools.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/write_observer.h"
#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

std::atomic<int> writes{0};
std::atomic<const void*> last_addr{nullptr};
std::atomic<const char*> last_via{nullptr};

void Count(const void* addr, uintptr_t, const char* via) {
  writes.fetch_add(1, std::memory_order_relaxed);
  last_addr.store(addr, std::memory_order_relaxed);
  last_via.store(via, std::memory_order_relaxed);
}

class Learn : public testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "fast");
    pmalloc::internal::SetWriteObserver(Count);
  }
};

__attribute__((noinline)) void Store(int* p, int v) {
  *reinterpret_cast<volatile int*>(p) = v;
  asm volatile("" ::: "memory");
}

int* LockedInt() {
  int* p = static_cast<int*>(pmalloc(pmalloc_default_pool(), sizeof(int)));
  if (p == nullptr || pmalloc_lockdown(0) != 0 || pmalloc_is_protected(p) != 1) _exit(90);
  writes = 0;
  return p;
}

// Exit code 0 when `ok`, else a line on stderr and 1.
[[noreturn]] void Done(bool ok, const char* what) {
  if (!ok) fprintf(stderr, "failed: %s (writes=%d)\n", what, writes.load());
  _exit(ok ? 0 : 1);
}

TEST_F(Learn, EveryStoreIsRecordedAndCompletes) {
  EXPECT_EXIT(
      {
        int* p = LockedInt();
        for (int i = 1; i <= 1000; ++i) Store(p, i);
        Done(writes == 1000 && *p == 1000 && last_addr.load() == p &&
                 strcmp(last_via.load(), "store") == 0 && pmalloc_is_protected(p) == 1,
             "1000 stores");
      },
      testing::ExitedWithCode(0), "^$");
}

// Learn mode protects with mprotect, not protect:shared: a forked child's let-through write
// stays in the child (a shared memfd page would carry it into the parent).
TEST_F(Learn, ChildsWriteStaysInTheChild) {
  EXPECT_EXIT(
      {
        int* p = LockedInt();
        const pid_t pid = fork();
        if (pid == 0) {
          Store(p, 5);
          _exit(*p == 5 && writes == 1 ? 0 : 1);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        Done(WIFEXITED(status) && WEXITSTATUS(status) == 0 && *p == 0 && writes == 0, "fork");
      },
      testing::ExitedWithCode(0), "^$");
}

TEST_F(Learn, StoresOfAnotherThreadAreRecorded) {
  EXPECT_EXIT(
      {
        int* p = LockedInt();
        std::thread([p] {
          for (int i = 1; i <= 100; ++i) Store(p, i);
        }).join();
        Store(p, 7);
        Done(writes == 101 && *p == 7, "thread stores");
      },
      testing::ExitedWithCode(0), "^$");
}

// Two threads storing to the same locked page: a store that lands while the page is
// writable for the other thread's single step is not recorded (docs/triggers.md). Checks
// that nothing is lost or crashes, and prints how many of the stores were recorded.
TEST_F(Learn, SamePageFromTwoThreads) {
  EXPECT_EXIT(
      {
        int* p = static_cast<int*>(pmalloc(pmalloc_default_pool(), 2 * sizeof(int)));
        LockedInt();
        constexpr int kStores = 5000;
        std::thread a([p] {
          for (int i = 1; i <= kStores; ++i) Store(p, i);
        });
        std::thread b([p] {
          for (int i = 1; i <= kStores; ++i) Store(p + 1, i);
        });
        a.join();
        b.join();
        printf("recorded %d of %d stores\n", writes.load(), 2 * kStores);
        fflush(stdout);
        Done(p[0] == kStores && p[1] == kStores && writes > 0 && writes <= 2 * kStores &&
                 pmalloc_is_protected(p) == 1,
             "two threads");
      },
      testing::ExitedWithCode(0), "^$");
}

// rep stosb (glibc's memset for large sizes) traps after every iteration: stepping goes on
// until the instruction is done, across two pages.
TEST_F(Learn, MemsetAcrossPages) {
  EXPECT_EXIT(
      {
        char* p = static_cast<char*>(pmalloc(pmalloc_default_pool(), 3 * 4096));
        LockedInt();
        void* (*volatile fill)(void*, int, size_t) = memset;
        fill(p, 7, 3 * 4096);
        bool ok = true;
        for (int i = 0; i < 3 * 4096; ++i) ok = ok && p[i] == 7;
        Done(ok && writes >= 3, "memset");
      },
      testing::ExitedWithCode(0), "^$");
}

TEST_F(Learn, ReadIntoLockedBufferIsRetriedAndRecorded) {
  EXPECT_EXIT(
      {
        char* p = static_cast<char*>(pmalloc(pmalloc_default_pool(), 64));
        LockedInt();
        int fds[2];
        if (pipe(fds) != 0 || write(fds[1], "hello", 5) != 5) _exit(91);
        const ssize_t n = read(fds[0], p, 5);
        const bool recorded =
            writes == 1 && last_addr.load() == p && strcmp(last_via.load(), "read") == 0;
        Store(reinterpret_cast<int*>(p + 8), 1);  // locked again: recorded as a store
        Done(n == 5 && memcmp(p, "hello", 5) == 0 && recorded && writes == 2, "read");
      },
      testing::ExitedWithCode(0), "^$");
}

// The common case: a thread blocked in epoll_wait, its events array in a pool, when the
// lockdown happens; then an event arrives.
TEST_F(Learn, EpollWaitBlockedAcrossLockdown) {
  EXPECT_EXIT(
      {
        auto* events =
            static_cast<epoll_event*>(pmalloc(pmalloc_default_pool(), 4 * sizeof(epoll_event)));
        const int ep = epoll_create1(0);
        const int ev = eventfd(0, 0);
        epoll_event want = {};
        want.events = EPOLLIN;
        want.data.u64 = 0x1234;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, ev, &want) != 0) _exit(91);
        std::atomic<int> got{-2};
        std::thread t([&] { got = epoll_wait(ep, events, 4, 10000); });
        usleep(100 * 1000);  // let it block
        LockedInt();
        const uint64_t one = 1;
        if (write(ev, &one, sizeof(one)) != sizeof(one)) _exit(92);
        t.join();
        Done(got == 1 && events[0].data.u64 == 0x1234 && writes == 1 &&
                 strcmp(last_via.load(), "epoll_wait") == 0,
             "epoll_wait");
      },
      testing::ExitedWithCode(0), "^$");
}

// Learn mode covers what lockdown protects: a MANUAL pool protected by the program faults
// as usual.
TEST_F(Learn, ManualPoolStillFaults) {
  pmalloc_pool* pool = pmalloc_create_pool("learn-manual", 0, 0, PMALLOC_POOL_MANUAL);
  int* p = static_cast<int*>(pmalloc(pool, sizeof(int)));
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_EXIT(Store(p, 1), testing::KilledBySignal(SIGSEGV),
              "^pmalloc: write to protected pool 'learn-manual'");
}

std::atomic<int> program_traps{0};
void ProgramTrap(int) { program_traps.fetch_add(1); }

// A program's own SIGTRAP handler, installed after pmalloc's, gets the traps that are not
// learn mode's; learning keeps working.
TEST_F(Learn, ProgramsSigtrapHandlerIsChained) {
  EXPECT_EXIT(
      {
        int* p = LockedInt();
        signal(SIGTRAP, ProgramTrap);
        raise(SIGTRAP);
        Store(p, 5);
        asm volatile("int3");
        Done(program_traps == 2 && writes == 1 && *p == 5, "sigtrap");
      },
      testing::ExitedWithCode(0), "^$");
}

// Without a handler of the program's, a trap that is not learn mode's still kills.
TEST_F(Learn, OtherTrapsKeepTheirDefaultAction) {
  EXPECT_EXIT(
      {
        LockedInt();
        asm volatile("int3");
        _exit(0);
      },
      testing::KilledBySignal(SIGTRAP), "^$");
}

// SIGUSR1 writes the learn report (here to stderr: no report path is configured) and then
// runs the program's own SIGUSR1 handler, installed after pmalloc's (nginx reopens its logs
// on USR1); sigaction(SIGUSR1, NULL, &old) shows the program's handler.
std::atomic<int> program_usr1{0};
void ProgramUsr1(int) { program_usr1.fetch_add(1); }

TEST_F(Learn, Usr1WritesTheReportThenRunsTheProgramsHandler) {
  EXPECT_EXIT(
      {
        struct sigaction sa = {};
        sa.sa_handler = ProgramUsr1;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, nullptr) != 0) _exit(2);
        struct sigaction now = {};
        if (sigaction(SIGUSR1, nullptr, &now) != 0 || now.sa_handler != ProgramUsr1) _exit(3);
        raise(SIGUSR1);
        raise(SIGUSR1);
        Done(program_usr1 == 2, "program's SIGUSR1 handler");
      },
      testing::ExitedWithCode(0),
      "== pmalloc learn report: pid [0-9]+, .*, at SIGUSR1 ==(.|\n)*at SIGUSR1");
}

// A program that ignores SIGUSR1 keeps ignoring it; one that never set it dies by it (the
// default action), after the report.
TEST_F(Learn, Usr1KeepsTheProgramsIgnoreAndDefault) {
  EXPECT_EXIT(
      {
        signal(SIGUSR1, SIG_IGN);
        raise(SIGUSR1);
        _exit(0);
      },
      testing::ExitedWithCode(0), "at SIGUSR1");
  EXPECT_EXIT(
      {
        raise(SIGUSR1);
        _exit(0);
      },
      testing::KilledBySignal(SIGUSR1), "at SIGUSR1");
}

}  // namespace
