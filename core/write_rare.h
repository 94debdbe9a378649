// Write-rare pools (PMALLOC_POOL_WRITE_RARE): read-only everywhere once protected, changed
// only through pmalloc_wr_*, which never make a mapping at the object's address writable.
// Every protected area of such a pool is a read-only MAP_SHARED mapping of the pool's memfd,
// whose descriptor the pool keeps (close-on-exec, a high number: platform::OpenPoolFile);
// wr_memcpy/wr_memset pwrite the file, wr_assign_ptr stores through a one-page alias mapping
// at another address (platform::AliasStore64), and each update is re-read through the real
// address. pmalloc_make_pool_ro closes the descriptor for good. docs/write-rare.md has the
// design, the threat model and the costs.
//
// Thread safety: every call takes the owning pool's lock, so writes to one pool are
// serialized, and never race protect, free, fork or destroy of that pool.
#ifndef PMALLOC_CORE_WRITE_RARE_H_
#define PMALLOC_CORE_WRITE_RARE_H_

#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "core/pool.h"

namespace pmalloc::internal {

class WriteRare {
 public:
  // pmalloc_wr_memcpy, pmalloc_wr_memset, pmalloc_wr_assign_ptr, pmalloc_make_pool_ro (see
  // pmalloc.h for the contract): 0, or -1 with errno.
  static int Memcpy(void* dst, const void* src, size_t n);
  static int Memset(void* dst, int c, size_t n);
  static int AssignPtr(void* dst, const void* value);
  static int MakeReadOnly(Pool* pool);

  // Hooks of Pool, called with its lock held.
  // Protect: moves the (already mprotect'ed) area of `m` onto the pool's memfd unless it is
  // there already, opening one if the pool has none. False with errno when it stays where
  // it is (mprotect only: the write-rare path then refuses it with EIO).
  static bool MoveOntoPoolFile(Pool* pool, BlockMap* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->lock_);
  // Fork prepare: copies the protected areas into a fresh memfd for the child, so that
  // parent and child write-rare updates stay apart (both keep copy semantics).
  static void PrepareFork(Pool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->lock_);
  // After fork, in both processes: the child maps its copy over the protected areas and
  // makes it the pool's memfd; the parent closes the copy.
  static void AfterFork(Pool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->lock_);

 private:
  struct Op;
  // Checks [dst, dst+n) and applies `op`: a plain store on a writable area, otherwise through
  // the pool's memfd, then verified through `dst`.
  static int Write(void* dst, size_t n, const Op& op);
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_WRITE_RARE_H_
