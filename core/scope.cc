// C API of the tagging scope (pmalloc_scope_enter/exit/current).
#include "core/scope.h"

#include <errno.h>

#include "core/config.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc::internal {

__thread Pool* tls_scope __attribute__((tls_model("initial-exec"))) = nullptr;

}  // namespace pmalloc::internal

using pmalloc::internal::kMallocAlignment;
using pmalloc::internal::Pool;
using pmalloc::internal::tls_scope;

extern "C" {

pmalloc_pool* pmalloc_scope_enter(pmalloc_pool* handle) {
  Pool* prev = tls_scope;
  Pool* pool = reinterpret_cast<Pool*>(handle);
  if (pool != nullptr && (!pool->Valid() || pool->alignment() < kMallocAlignment)) {
    errno = EINVAL;
    return reinterpret_cast<pmalloc_pool*>(prev);
  }
  // disable:true keeps the scope empty: tagged allocations are plain jemalloc memory.
  if (!pmalloc::internal::GetConfig().disable) tls_scope = pool;
  return reinterpret_cast<pmalloc_pool*>(prev);
}

void pmalloc_scope_exit(pmalloc_pool* prev) { tls_scope = reinterpret_cast<Pool*>(prev); }

pmalloc_pool* pmalloc_scope_current(void) { return reinterpret_cast<pmalloc_pool*>(tls_scope); }

}  // extern "C"
