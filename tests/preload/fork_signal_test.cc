// The face across fork (with threads allocating while the parent forks) and in signal
// handlers that allocate.
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"
#include "pmalloc/pmalloc.hpp"

namespace {

size_t Opaque(size_t v) {
  volatile size_t x = v;
  return x;
}

int WaitExit(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Fork, ChildUsesPoolAndJemallocMemory) {
  pmalloc_pool* pool = pmalloc_create_pool("fork", 0, 0, 0);
  char* tagged;
  {
    pmalloc::ScopedPool scope(pool);
    tagged = strdup("tagged before fork");
  }
  char* plain = strdup("plain before fork");
  const pid_t pid = fork();
  if (pid == 0) {
    int bad = 0;
    bad += strcmp(tagged, "tagged before fork") != 0;
    bad += strcmp(plain, "plain before fork") != 0;
    tagged[0] = 'T';  // the child's copy: the parent must not see it
    free(tagged);
    free(plain);
    {
      pmalloc::ScopedPool scope(pool);
      std::string s(1000, 'c');
      bad += pmalloc_pool_of(s.data()) != pool;
    }
    void* p = malloc(Opaque(100));
    free(p);
    _exit(bad);
  }
  ASSERT_GT(pid, 0);
  EXPECT_EQ(WaitExit(pid), 0);
  EXPECT_STREQ(tagged, "tagged before fork");
  free(tagged);
  free(plain);
}

TEST(Fork, ForkWhileThreadsAllocate) {
  pmalloc_pool* pool = pmalloc_create_pool("forkmt", 0, 0, 0);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      while (!stop.load(std::memory_order_relaxed)) {
        pmalloc::ScopedPool scope(t == 0 ? pool : nullptr);
        std::vector<std::string> v;
        for (int i = 0; i < 64; ++i) v.emplace_back(static_cast<size_t>(32 + i), 'x');
      }
    });
  }
  for (int i = 0; i < 50; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      // Every lock the threads might have held is consistent in the child.
      std::vector<std::string> v;
      {
        pmalloc::ScopedPool scope(pool);
        for (int j = 0; j < 100; ++j) v.emplace_back(100, 'y');
      }
      for (int j = 0; j < 100; ++j) v.emplace_back(100, 'z');
      _exit(pmalloc_pool_of(v[0].data()) == pool ? 0 : 1);
    }
    ASSERT_GT(pid, 0);
    ASSERT_EQ(WaitExit(pid), 0) << "fork " << i;
  }
  stop = true;
  for (auto& t : threads) t.join();
}

std::atomic<int> handled{0};

void AllocatingHandler(int) {
  // Not async-signal-safe by POSIX, but common in real programs: it must work as long as
  // the signal did not interrupt the allocator itself.
  void* p = malloc(Opaque(100));
  std::string s(300, 'h');
  auto* v = new std::vector<int>(1000, 1);
  p = realloc(p, Opaque(5000));
  free(p);
  delete v;
  handled.fetch_add(1);
}

TEST(Signal, HandlerThatAllocates) {
  struct sigaction sa {};
  sa.sa_handler = AllocatingHandler;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, nullptr), 0);
  handled = 0;
  for (int i = 0; i < 100; ++i) raise(SIGUSR1);
  EXPECT_EQ(handled.load(), 100);
  // Delivered to a thread blocked in a syscall.
  std::atomic<bool> ready{false};
  std::thread sleeper([&] {
    ready = true;
    while (handled.load() < 110) usleep(1000);
  });
  while (!ready) usleep(100);
  for (int i = 0; i < 10; ++i) {
    const int before = handled.load();
    pthread_kill(sleeper.native_handle(), SIGUSR1);
    for (int wait = 0; wait < 5000 && handled.load() == before; ++wait) usleep(1000);
  }
  sleeper.join();
  EXPECT_EQ(handled.load(), 110);
  signal(SIGUSR1, SIG_DFL);
}

}  // namespace
