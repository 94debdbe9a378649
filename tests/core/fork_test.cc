// Fork with writable pools under protect:shared (docs/design.md, "Fork"). Writable areas are
// MAP_SHARED on the pool's memfd; the fork handler re-maps them MAP_PRIVATE over the same
// file, so parent and child copy on write as with ordinary memory, without a copy at fork.
// A privatised area is protected by copying it whole onto a fresh memfd (in a private file
// mapping a page the process never touched reads the file), after mprotect: no store lost.
// Each test forks its own children; the parent checks what they report.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "in_child.h"
#include "pmalloc/pmalloc.h"
#include "proc_mem_write.h"

namespace {

using pmalloc_test::InChild;
using pmalloc_test::MprotectMode;
using pmalloc_test::ProcMemWrite;

constexpr size_t kPage = 4096;

void Fill(void* p, size_t n, uint8_t seed) {
  auto* b = static_cast<uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
}

bool Holds(const void* p, size_t n, uint8_t seed) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != static_cast<uint8_t>(seed + i * 7)) return false;
  }
  return true;
}

// Parent and child write the same blocks and allocate after fork (new areas, from fresh
// memfds in each process); neither ever sees the other's bytes. A pipe orders it: the
// child writes first and waits, the parent writes, then the child checks its own bytes are
// still there, and the parent checks its bytes after the child exited.
TEST(Fork, TwoWayIsolationWithAllocationInBothProcesses) {
  pmalloc_pool* pool = pmalloc_create_pool("fork-2way", 0, 0, PMALLOC_POOL_MANUAL);
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) {  // 2 MiB: several areas
    blocks.push_back(pmalloc(pool, 32 << 10));
    ASSERT_NE(blocks.back(), nullptr);
    Fill(blocks.back(), 32 << 10, 1);
  }
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    char c = 0;
    for (void* b : blocks) {
      if (!Holds(b, 32 << 10, 1)) _exit(10);
      Fill(b, 32 << 10, 2);
    }
    std::vector<void*> mine;
    for (int i = 0; i < 16; ++i) {  // 4 MiB more: new areas in the child
      mine.push_back(pmalloc(pool, 256 << 10));
      if (mine.back() == nullptr) _exit(11);
      Fill(mine.back(), 256 << 10, 3);
    }
    if (write(to_parent[1], "c", 1) != 1 || read(to_child[0], &c, 1) != 1) _exit(12);
    for (void* b : blocks) {
      if (!Holds(b, 32 << 10, 2)) _exit(13);  // the parent's writes did not reach us
    }
    for (void* b : mine) {
      if (!Holds(b, 256 << 10, 3)) _exit(14);  // nor its new blocks at the same addresses
    }
    _exit(0);
  }
  ASSERT_GT(pid, 0);
  close(to_parent[1]);  // a child that dies makes read() return 0
  close(to_child[0]);
  char c = 0;
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  for (void* b : blocks) {
    ASSERT_TRUE(Holds(b, 32 << 10, 1));  // the child's writes did not reach us
    Fill(b, 32 << 10, 4);
  }
  std::vector<void*> mine;
  for (int i = 0; i < 16; ++i) {
    mine.push_back(pmalloc(pool, 256 << 10));
    ASSERT_NE(mine.back(), nullptr);
    Fill(mine.back(), 256 << 10, 5);
  }
  ASSERT_EQ(write(to_child[1], "p", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (void* b : blocks) ASSERT_TRUE(Holds(b, 32 << 10, 4));
  for (void* b : mine) ASSERT_TRUE(Holds(b, 256 << 10, 5));
  for (void* b : blocks) pfree(pool, b);
  for (void* b : mine) pfree(pool, b);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
  close(to_child[1]);
  close(to_parent[0]);
}

// Threads keep allocating and filling blocks while the main thread forks 20 times. Every
// block whose fill completed before fork holds its bytes in the child (the fork handler's
// re-mapping loses no store), and the child's scribbling never reaches the parent.
TEST(Fork, RacingWritersKeepTheirStoresAndStayIsolated) {
  pmalloc_pool* pool = pmalloc_create_pool("fork-threads", 0, 0, PMALLOC_POOL_MANUAL);
  constexpr int kThreads = 2, kPerThread = 6000;
  constexpr size_t kBlock = 200;
  std::vector<std::vector<uint8_t*>> blocks(kThreads, std::vector<uint8_t*>(kPerThread));
  std::atomic<int> done[kThreads];
  for (auto& d : done) d.store(0);
  std::atomic<bool> failed{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto* p = static_cast<uint8_t*>(pmalloc(pool, kBlock));
        if (p == nullptr) {
          failed = true;
          return;
        }
        Fill(p, kBlock, static_cast<uint8_t>(i));
        blocks[t][i] = p;
        done[t].store(i + 1, std::memory_order_release);
      }
    });
  }
  int bad = 0;
  for (int round = 0; round < 20; ++round) {
    const int code = InChild([&] {
      for (int t = 0; t < kThreads; ++t) {
        const int n = done[t].load(std::memory_order_acquire);
        for (int i = 0; i < n; ++i) {
          if (!Holds(blocks[t][i], kBlock, static_cast<uint8_t>(i))) return 10;
          memset(blocks[t][i], 0xee, kBlock);
        }
      }
      return pmalloc(pool, 100 << 10) != nullptr ? 0 : 11;  // a new area in the child
    });
    if (code != 0) ++bad;
    usleep(2000);
  }
  for (auto& w : writers) w.join();
  ASSERT_FALSE(failed.load());
  EXPECT_EQ(bad, 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      ASSERT_TRUE(Holds(blocks[t][i], kBlock, static_cast<uint8_t>(i))) << t << " " << i;
    }
  }
}

// Protect after fork, in the child and in the parent: every byte written before fork is
// kept, including pages this process never touched after fork (they read the file in a
// private file mapping, so a copy that skipped them would lose them), the protected
// memory faults on a store and refuses /proc/self/mem writes (EIO), and the other process's
// pool stays writable.
TEST(Fork, ProtectAfterForkInChildAndParent) {
  pmalloc_pool* pool = pmalloc_create_pool("fork-protect", 0, 0, PMALLOC_POOL_MANUAL);
  std::vector<void*> blocks;
  for (int i = 0; i < 40; ++i) {
    blocks.push_back(pmalloc(pool, 3 * kPage + 100));
    ASSERT_NE(blocks.back(), nullptr);
    Fill(blocks.back(), 3 * kPage + 100, static_cast<uint8_t>(i));
  }
  auto check_protected = [&]() -> int {
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (!Holds(blocks[i], 3 * kPage + 100, static_cast<uint8_t>(i))) return 20;
      if (pmalloc_is_protected(blocks[i]) != 1) return 21;
      errno = 0;
      const bool refused = ProcMemWrite(blocks[i], "X", 1) == -1 && errno == EIO;
      if (refused == MprotectMode()) return 22;      // protect:mprotect leaves it writable
      const uint8_t orig = static_cast<uint8_t>(i);  // put the byte back (protect:mprotect)
      if (MprotectMode() && ProcMemWrite(blocks[i], &orig, 1) != 1) return 24;
    }
    // A store faults (in a grandchild, so that this process can report).
    const int store = InChild([&] {
      static_cast<volatile char*>(blocks[5])[10] = 1;
      return 0;
    });
    return store == 128 + SIGSEGV ? 0 : 23;
  };
  int to_parent[2];
  ASSERT_EQ(pipe(to_parent), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    if (pmalloc_protect_pool(pool) != 0) _exit(30);
    const int code = check_protected();
    char c = static_cast<char>(code);
    _exit(write(to_parent[1], &c, 1) == 1 ? code : 31);
  }
  ASSERT_GT(pid, 0);
  close(to_parent[1]);  // a child that dies makes read() return 0
  char c = 0;
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  EXPECT_EQ(c, 0);
  // The child protected its copy; ours is still writable, and we write it.
  EXPECT_EQ(pmalloc_is_protected(blocks[0]), 0);
  Fill(blocks[1], 3 * kPage + 100, 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_EQ(check_protected(), 0);
  close(to_parent[0]);
}

// The descriptor of a pool's memfd is close-on-exec, above the descriptors a program
// expects to own, open only while the pool has writable areas, and not inherited across
// fork (the child's next area gets a fresh memfd).
TEST(Fork, PoolDescriptorIsHighCloexecAndClosedAtProtect) {
  if (MprotectMode()) GTEST_SKIP() << "protect:shared only";
  auto pool_fds = [] {
    std::vector<int> fds;
    for (int fd = 0; fd < 4096; ++fd) {
      char path[64], target[256];
      snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
      const ssize_t n = readlink(path, target, sizeof(target) - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      if (strstr(target, "memfd:pmalloc:fork-fd") != nullptr) fds.push_back(fd);
    }
    return fds;
  };
  pmalloc_pool* pool = pmalloc_create_pool("fork-fd", 0, 0, PMALLOC_POOL_MANUAL);
  ASSERT_NE(pmalloc(pool, 100), nullptr);
  const std::vector<int> fds = pool_fds();
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_GE(fds[0], 512);
  EXPECT_EQ(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(InChild([&] { return pool_fds().empty() ? 0 : 1; }), 0);
  // The fork closed it in the parent too; the next area opens a fresh one.
  EXPECT_TRUE(pool_fds().empty());
  ASSERT_NE(pmalloc(pool, 1 << 20), nullptr);
  EXPECT_EQ(pool_fds().size(), 1u);
  ASSERT_EQ(pmalloc_protect_pool(pool), 0);
  EXPECT_TRUE(pool_fds().empty());
}

}  // namespace
