// The thread's tagging scope: while it names a pool, every allocation made through the libc
// face on this thread (malloc, new, STL containers, third-party code) comes from that pool.
// Read on every malloc, so it is one initial-exec TLS slot (one %fs-relative load, no
// __tls_get_addr call) and is set only by pmalloc_scope_enter/exit.
#ifndef PMALLOC_CORE_SCOPE_H_
#define PMALLOC_CORE_SCOPE_H_

#include "core/pool.h"

namespace pmalloc::internal {

// nullptr: untagged (jemalloc). `__thread` rather than `thread_local`: a trivially
// initialised slot needs no TLS wrapper call.
extern __thread Pool* tls_scope __attribute__((tls_model("initial-exec")));

inline Pool* CurrentScope() { return tls_scope; }

// malloc's alignment (alignof(max_align_t)). A scope serves malloc and new, so its pool must
// align at least this much: pmalloc_scope_enter refuses a pool created with a smaller
// align_order (EINVAL).
inline constexpr size_t kMallocAlignment = 16;

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_SCOPE_H_
