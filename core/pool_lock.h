// The pool lock: a test-and-test-and-set spin lock whose release is a plain store, so an
// uncontended lock/unlock pair costs one locked instruction (the acquiring exchange) where
// absl's SpinLock costs two (its Unlock exchanges the word to find sleepers). Pool critical
// sections are short except protect, fork and area opening (syscalls), so a waiter spins a
// little, then yields the CPU (sched_yield), and after ~1000 yields sleeps 50 µs per try.
//
// Starvation: a bare TTAS lock lets threads that allocate in a loop take it again and again
// while a waiter that has yielded (a lockdown's protect, on a busy machine) never wins the
// race: 300 lockdowns against two allocating threads took 15-20 s instead of 0.2 s with
// another process on the CPUs. So a waiter that failed ~100 tries raises `starving_`, and
// until it has the lock every other thread stands aside (the fast path reads the flag, on
// the lock's cache line, before its exchange). Standing aside is bounded (~3000 tries, after
// which the waiter drops the flag), so a flag left by a thread that vanished (cancelled
// while waiting) costs one delay of ~0.1 s, not a hang nor a slow pool;
// the fork handler clears it in the child (ClearWaitersAfterFork).
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
    if (ABSL_PREDICT_TRUE(!starving_.load(std::memory_order_relaxed) &&
                          !word_.exchange(true, std::memory_order_acquire))) {
      return;
    }
    LockSlow();
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() { word_.store(false, std::memory_order_release); }
  // In the fork child (the lock held by the fork handler): the thread that raised the flag
  // does not exist there.
  void ClearWaitersAfterFork() { starving_.store(false, std::memory_order_relaxed); }

 private:
  static constexpr int kStarvingAfter = 100;  // failed tries before a waiter raises the flag
  static constexpr int kDeferAtMost = 3000;   // tries another waiter stands aside for it

  ABSL_ATTRIBUTE_NOINLINE void LockSlow() {
    bool mine = false;  // this thread raised starving_
    for (int spins = 0;; ++spins) {
      const bool defer = !mine && spins < kDeferAtMost && starving_.load(std::memory_order_relaxed);
      if (!defer && !word_.load(std::memory_order_relaxed) &&
          !word_.exchange(true, std::memory_order_acquire)) {
        if (mine) starving_.store(false, std::memory_order_relaxed);
        return;
      }
      // Stood aside long enough: a flag still raised may have no owner any more (a thread
      // cancelled while it waited); drop it, so that the others stop standing aside.
      if (!mine && spins == kDeferAtMost) starving_.store(false, std::memory_order_relaxed);
      if (!mine && spins >= kStarvingAfter) {
        bool expected = false;
        mine = starving_.compare_exchange_strong(expected, true, std::memory_order_relaxed);
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
  std::atomic<bool> starving_{false};
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
