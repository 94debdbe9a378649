// The pool lock: a test-and-test-and-set spin lock whose release is a plain store, so an
// uncontended lock/unlock pair costs one locked instruction (the acquiring exchange) where
// absl's SpinLock costs two (its Unlock exchanges the word to find sleepers). Pool critical
// sections are short except protect, fork and area opening (syscalls), so a waiter spins a
// little, then yields the CPU (sched_yield), and after ~1000 yields sleeps 50 µs per try.
//
// Never allocates; safe on the malloc path. Not for signal handlers (nothing there locks a
// pool: fault reports read block maps lock-free).
#ifndef PMALLOC_CORE_POOL_LOCK_H_
#define PMALLOC_CORE_POOL_LOCK_H_

#include <sched.h>
#include <time.h>

#include <atomic>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"

namespace pmalloc::internal {

class ABSL_LOCKABLE PoolLock {
 public:
  constexpr PoolLock() = default;
  PoolLock(const PoolLock&) = delete;
  PoolLock& operator=(const PoolLock&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    if (ABSL_PREDICT_TRUE(!word_.exchange(true, std::memory_order_acquire))) return;
    LockSlow();
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() { word_.store(false, std::memory_order_release); }

 private:
  ABSL_ATTRIBUTE_NOINLINE void LockSlow() {
    for (int spins = 0;; ++spins) {
      if (!word_.load(std::memory_order_relaxed) &&
          !word_.exchange(true, std::memory_order_acquire)) {
        return;
      }
      if (spins < 100) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      } else if (spins < 1100) {
        sched_yield();
      } else {
        // A long hold (protect of a large pool, fork, a slow mapping) or a holder that a
        // higher-priority waiter keeps off the CPU (sched_yield never yields to it): sleep.
        const struct timespec nap = {0, 50 * 1000};
        nanosleep(&nap, nullptr);
      }
    }
  }

  std::atomic<bool> word_{false};
};

class ABSL_SCOPED_LOCKABLE PoolLockHolder {
 public:
  explicit PoolLockHolder(PoolLock* l) ABSL_EXCLUSIVE_LOCK_FUNCTION(l) : lock_(l) { l->Lock(); }
  ~PoolLockHolder() ABSL_UNLOCK_FUNCTION() { lock_->Unlock(); }
  PoolLockHolder(const PoolLockHolder&) = delete;
  PoolLockHolder& operator=(const PoolLockHolder&) = delete;

 private:
  PoolLock* const lock_;
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_POOL_LOCK_H_
