#include "core/disabled_blocks.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>

#include <cstdint>
#include <map>
#include <new>
#include <set>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/base/const_init.h"
#include "absl/base/internal/spinlock.h"
#include "core/fatal.h"
#include "core/meta_allocator.h"

namespace pmalloc::internal::disabled_blocks {
namespace {

using absl::base_internal::SpinLock;
using absl::base_internal::SpinLockHolder;

struct Block {
  Pool* pool;
  bool live;  // false: freed, remembered to tell a double free from an invalid pointer
};

// Freed blocks stay until their address is handed out again or their pool is destroyed, so
// the table holds at most one entry per address jemalloc ever gave a pool.
struct Table {
  std::map<uintptr_t, Block, std::less<uintptr_t>, MetaAllocator<std::pair<const uintptr_t, Block>>>
      by_addr;
  std::set<std::pair<Pool*, uintptr_t>, std::less<std::pair<Pool*, uintptr_t>>,
           MetaAllocator<std::pair<Pool*, uintptr_t>>>
      by_pool;  // to forget a destroyed pool's blocks
};

ABSL_CONST_INIT SpinLock table_lock(absl::kConstInit, absl::base_internal::SCHEDULE_KERNEL_ONLY);
ABSL_CONST_INIT Table* table = nullptr;  // guarded by table_lock

}  // namespace

void* Track(Pool* pool, void* p) {
  if (p == nullptr) return nullptr;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  {
    SpinLockHolder h(&table_lock);
    if (table == nullptr) table = MetaNew<Table>();
    if (table != nullptr) {
      try {
        auto [it, inserted] = table->by_addr.try_emplace(a, Block{pool, true});
        if (!inserted) {  // a freed block's address, handed out again
          table->by_pool.erase({it->second.pool, a});
          it->second = Block{pool, true};
        }
        try {
          table->by_pool.emplace(pool, a);
          return p;
        } catch (const std::bad_alloc&) {
          table->by_addr.erase(it);
        }
      } catch (const std::bad_alloc&) {
      }
    }
  }
  dallocx(p, 0);
  errno = ENOMEM;
  return nullptr;
}

void Free(Pool* pool, const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  {
    SpinLockHolder h(&table_lock);
    auto it = table == nullptr ? decltype(table->by_addr.end()){} : table->by_addr.find(a);
    if (table == nullptr || it == table->by_addr.end() || it->second.pool != pool) {
      FatalInvalidPfree(p, pool->name());
    }
    if (!it->second.live) FatalDoublePfree(p, pool->name());
    it->second.live = false;
  }
  dallocx(const_cast<void*>(p), 0);
}

void ForgetPool(const Pool* pool) {
  SpinLockHolder h(&table_lock);
  if (table == nullptr) return;
  auto it = table->by_pool.lower_bound({const_cast<Pool*>(pool), 0});
  while (it != table->by_pool.end() && it->first == pool) {
    table->by_addr.erase(it->second);
    it = table->by_pool.erase(it);
  }
}

void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { table_lock.Lock(); }
void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { table_lock.Unlock(); }

}  // namespace pmalloc::internal::disabled_blocks
