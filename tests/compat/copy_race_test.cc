// The copying calls of compat/ racing pmalloc_lockdown() (issue 9.2 for the kernel-style API):
// kmemdup, kstrdup, kstrndup and krealloc into a GFP_LOCKABLE block copy under the pool lock,
// so another thread's lockdown never protects the block before the copy is done, and
// kfree_sensitive zeroes a block only while it holds the pool lock and the block is writable.
// Each call returns a complete copy (or fails cleanly), and nothing faults inside pmalloc.
// Lockdown is process-wide: CTest runs each test in its own process. Labelled `concurrency`.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "pmalloc/compat/slab.h"
#include "pmalloc/pmalloc.h"

namespace {

bool Filled(const void* p, char c, size_t n) {
  const char* s = static_cast<const char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (s[i] != c) return false;
  }
  return true;
}

// Lockdowns at 200-1000 us intervals, as in issue 9's reproduction and race_test.cc.
TEST(CompatConcurrency, CopiesRacingLockdown) {
  const std::string text(3000, 'k');
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread dup_thread([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      char* s = kstrdup(text.c_str(), GFP_LOCKABLE);
      if (s != nullptr && text != s) bad.fetch_add(1);
      char* n = kstrndup(text.c_str(), 2500, GFP_LOCKABLE);
      if (n != nullptr && (!Filled(n, 'k', 2500) || n[2500] != '\0')) bad.fetch_add(1);
      void* m = kmemdup(text.data(), text.size(), GFP_LOCKABLE);
      if (m != nullptr && !Filled(m, 'k', text.size())) bad.fetch_add(1);
      kfree(s);
      kfree(n);
      kfree(m);
    }
  });
  std::thread realloc_thread([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      // Heap to pool (the copy into a fresh pool block), then a pool block that grows.
      void* h = malloc(2000);
      if (h == nullptr) continue;
      memset(h, 'r', 2000);
      void* p = krealloc(h, 3000, GFP_LOCKABLE);
      if (p == nullptr) {
        free(h);
        continue;
      }
      if (!Filled(p, 'r', 2000)) bad.fetch_add(1);
      void* q = krealloc(p, 6000, GFP_LOCKABLE | __GFP_ZERO);
      if (q == nullptr) {
        kfree(p);
        continue;
      }
      if (!Filled(q, 'r', 2000)) bad.fetch_add(1);
      kfree(q);
    }
  });
  std::thread sensitive_thread([&] {
    // kfree_sensitive zeroes a writable block and only un-accounts a protected one.
    while (!stop.load(std::memory_order_relaxed)) kfree_sensitive(kmalloc(3000, GFP_LOCKABLE));
  });
  for (int i = 0; i < 300; ++i) {
    (void)pmalloc_lockdown(0);
    usleep(200 + static_cast<useconds_t>((i * 7919) % 800));
  }
  stop = true;
  dup_thread.join();
  realloc_thread.join();
  sensitive_thread.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
