// The C API of pmalloc.h: argument checks and errno, then one call into the pool or the
// registry.
#include <errno.h>
#include <jemalloc/jemalloc.h>

#include <cstring>

#include "core/config.h"
#include "core/disabled_blocks.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/registry.h"
#include "core/write_rare.h"
#include "pmalloc/pmalloc.h"

using pmalloc::internal::Pool;
using pmalloc::internal::Registry;
using pmalloc::internal::WriteRare;

struct pmalloc_pool {};  // never defined: handles are Pool objects

namespace {

Pool* FromHandle(const pmalloc_pool* handle) {
  Pool* pool = reinterpret_cast<Pool*>(const_cast<pmalloc_pool*>(handle));
  if (pool == nullptr || !pool->Valid()) {
    errno = EINVAL;
    return nullptr;
  }
  return pool;
}

pmalloc_pool* ToHandle(Pool* pool) { return reinterpret_cast<pmalloc_pool*>(pool); }

// PMALLOC_CONF=disable:true: pools hand out plain jemalloc memory and are never protected,
// so pmalloc costs nothing when it is not wanted (docs/design.md §8).
bool Disabled() { return pmalloc::internal::GetConfig().disable; }

void* JemallocAlloc(size_t size, size_t align, bool zero) {
  const int flags = (zero ? MALLOCX_ZERO : 0) | (align > 16 ? MALLOCX_ALIGN(align) : 0);
  void* p = mallocx(size == 0 ? 1 : size, flags);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

// disable:true: the block is remembered so that pfree keeps its checks (disabled_blocks.h).
void* Track(Pool* pool, void* p) { return pmalloc::internal::disabled_blocks::Track(pool, p); }

// n * size, or false on overflow.
bool Multiply(size_t n, size_t size, size_t* out) { return !__builtin_mul_overflow(n, size, out); }

}  // namespace

extern "C" {

pmalloc_pool* pmalloc_create_pool(const char* name, size_t refill, unsigned short align_order,
                                  unsigned flags) {
  return ToHandle(Registry::CreatePool(name, refill, align_order, flags));
}

int pmalloc_prealloc(pmalloc_pool* handle, size_t size) {
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) return -1;
  return Disabled() ? 0 : pool->Prealloc(size);
}

void* pzalloc(pmalloc_pool* handle, size_t size) {
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) return nullptr;
  if (Disabled()) return Track(pool, JemallocAlloc(size, pool->alignment(), true));
  return pool->Allocate(size, 0, true);
}

void* pmalloc_aligned(pmalloc_pool* handle, size_t size, size_t align) {
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) return nullptr;
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  if (Disabled()) {
    return Track(pool,
                 JemallocAlloc(size, align > pool->alignment() ? align : pool->alignment(), false));
  }
  return pool->Allocate(size, align, false);
}

void* pmalloc_array(pmalloc_pool* handle, size_t n, size_t size) {
  size_t bytes;
  if (!Multiply(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return pmalloc(handle, bytes);
}

void* pcalloc(pmalloc_pool* handle, size_t n, size_t size) {
  size_t bytes;
  if (!Multiply(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return pzalloc(handle, bytes);
}

char* pstrdup(pmalloc_pool* handle, const char* s) {
  if (s == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  const size_t len = strlen(s) + 1;
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) return nullptr;
  if (Disabled()) {
    char* copy = static_cast<char*>(Track(pool, JemallocAlloc(len, pool->alignment(), false)));
    if (copy != nullptr) memcpy(copy, s, len);
    return copy;
  }
  // Copied under the pool lock: a concurrent lockdown cannot protect a half-written string.
  return static_cast<char*>(pool->Allocate(len, 0, false, s, len));
}

void pfree(pmalloc_pool* handle, const void* ptr) {
  if (ptr == nullptr) return;
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) {  // misuse, not corruption: nothing is freed, and it is said
    pmalloc::internal::LogLine line;
    line.Str("pmalloc: pfree(): invalid pool handle ").Ptr(handle).Str(" for pointer ").Ptr(ptr);
    line.Str(": nothing freed (EINVAL)");
    line.Emit();
    errno = EINVAL;
    return;
  }
  if (Disabled() && !pmalloc::internal::Window::Contains(ptr)) {
    pmalloc::internal::disabled_blocks::Free(pool, ptr);  // same checks, same messages
    return;
  }
  pool->Free(ptr);
}

size_t pmalloc_usable_size(const void* ptr) {
  if (ptr != nullptr && Disabled() && !pmalloc::internal::Window::Contains(ptr)) {
    return sallocx(const_cast<void*>(ptr), 0);
  }
  return Pool::UsableSize(ptr);
}

int pmalloc_protect_pool(pmalloc_pool* handle) {
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) return -1;
  return Disabled() ? 0 : pool->Protect();
}

int pmalloc_seal_pool(pmalloc_pool* handle) {
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) return -1;
  return Disabled() ? 0 : pool->Seal();
}

int pmalloc_destroy_pool(pmalloc_pool* handle) {
  Pool* pool = FromHandle(handle);
  if (pool == nullptr || Registry::DestroyPool(pool) != 0) return -1;
  // The address only is used: the pool object is gone.
  if (Disabled()) pmalloc::internal::disabled_blocks::ForgetPool(pool);
  return 0;
}

int pmalloc_lockdown(unsigned flags) {
  if ((flags & ~PMALLOC_LOCKDOWN_SEAL) != 0) {
    errno = EINVAL;
    return -1;
  }
  const pmalloc::internal::Config& config = pmalloc::internal::GetConfig();
  if (config.disable) return 0;
  if (config.seal) flags |= PMALLOC_LOCKDOWN_SEAL;
  // Learn mode lets recorded writes through by making pages writable again: never seal.
  if (config.learn != pmalloc::internal::LearnMode::kOff) flags &= ~PMALLOC_LOCKDOWN_SEAL;
  return Registry::Lockdown(flags);
}

int pmalloc_register_lockdown_range(void* start, size_t len, const char* name) {
  return Registry::RegisterRange(start, len, name);
}

pmalloc_pool* pmalloc_pool_of(const void* ptr) {
  pmalloc::internal::Area* a = pmalloc::internal::Window::AreaOf(ptr);
  return a == nullptr ? nullptr : ToHandle(a->pool);
}

int pmalloc_is_protected(const void* ptr) {
  pmalloc::internal::Area* a = pmalloc::internal::Window::AreaOf(ptr);
  return (a != nullptr && !a->writable.load(std::memory_order_acquire)) ? 1 : 0;
}

int pmalloc_is_protected_range(const void* ptr, const char** name) {
  Registry::RangeInfo range;
  if (!Registry::RangeOf(ptr, &range)) {
    errno = ENOENT;
    return -1;
  }
  if (name != nullptr) *name = range.name;
  // As the fault report says it: lockdown protects every range, at once after it.
  return (range.sealed || Registry::LockedDown()) ? 1 : 0;
}

const char* pmalloc_pool_name(const pmalloc_pool* handle) {
  Pool* pool = FromHandle(handle);
  return pool == nullptr ? nullptr : pool->name();
}

int pmalloc_pool_stats(const pmalloc_pool* handle, pmalloc_stats* out) {
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) return -1;
  if (out == nullptr) {
    errno = EINVAL;
    return -1;
  }
  pool->Stats(out);
  return 0;
}

// disable:true: pool memory is jemalloc's, never protected: the update is a plain store.
int pmalloc_wr_memcpy(void* dst, const void* src, size_t n) {
  if (Disabled() && dst != nullptr && !pmalloc::internal::Window::Contains(dst)) {
    memcpy(dst, src, n);
    return 0;
  }
  return WriteRare::Memcpy(dst, src, n);
}

int pmalloc_wr_memset(void* dst, int c, size_t n) {
  if (Disabled() && dst != nullptr && !pmalloc::internal::Window::Contains(dst)) {
    memset(dst, c, n);
    return 0;
  }
  return WriteRare::Memset(dst, c, n);
}

int pmalloc_wr_assign_ptr(void* dst, const void* value) {
  if (Disabled() && dst != nullptr && !pmalloc::internal::Window::Contains(dst) &&
      (reinterpret_cast<uintptr_t>(dst) & 7) == 0) {
    __atomic_store_n(static_cast<const void**>(dst), value, __ATOMIC_RELEASE);
    return 0;
  }
  return WriteRare::AssignPtr(dst, value);
}

int pmalloc_make_pool_ro(pmalloc_pool* handle) {
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) return -1;
  return Disabled() ? 0 : WriteRare::MakeReadOnly(pool);
}

pmalloc_pool* pmalloc_default_pool(void) { return ToHandle(Registry::DefaultPool()); }

}  // extern "C"

// Declared in namespace pmalloc for C++ (see pmalloc.h); the symbol is the C `pmalloc`.
namespace pmalloc {
extern "C" void*(pmalloc)(pmalloc_pool* handle, size_t size) {
  Pool* pool = FromHandle(handle);
  if (pool == nullptr) return nullptr;
  if (Disabled()) return Track(pool, JemallocAlloc(size, pool->alignment(), false));
  return pool->Allocate(size, 0, false);
}
}  // namespace pmalloc
