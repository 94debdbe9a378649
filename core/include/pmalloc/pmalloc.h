/* pmalloc — protectable memory pools for Linux userspace.
 *
 * The C API follows the Linux kernel's pmalloc proposal so that ported code reads the
 * same. A pool is a set of *areas*: whole pages taken from one reserved address window.
 * Only pool data lives on pool pages (allocator metadata is kept elsewhere), so a pool can
 * be made read-only through the MMU, area by area, and sealed with mseal(2).
 *
 * Conventions:
 *  - `int` functions return 0 on success, or -1 with errno set.
 *  - pointer functions return NULL with errno set.
 *  - every function is thread-safe; each pool has its own lock and untagged malloc/free
 *    never takes a pmalloc lock.
 *  - misuse that is memory corruption aborts (SIGABRT) with one of these fixed lines on
 *    stderr (<addr>: 0x-prefixed hex):
 *    pfree of a pointer that is not the start of an allocation of that pool (another
 *    pool's block included), and double pfree:
 *      "pmalloc: pfree(): invalid pointer <addr> for pool '<name>'"
 *      "pmalloc: pfree(): double free of <addr> in pool '<name>'"
 *    (also under PMALLOC_CONF=disable:true, pools served by jemalloc).
 *    free() or realloc() of the libc face (and kfree) given a pointer inside the pool
 *    window that is in no live pool area (e.g. of a destroyed pool):
 *      "pmalloc: free(): invalid pointer <addr> (inside the pool window, in no live pool area)"
 *      "pmalloc: realloc(): invalid pointer <addr> (inside the pool window, in no live pool area)"
 *    and, when the libc face's __libc_start_main hook finds no glibc one to call:
 *      "pmalloc: cannot find glibc's __libc_start_main"
 *    or an interposed libc function (listen, epoll_wait, read, ...) finds no glibc one:
 *      "pmalloc: cannot find glibc's <function>"
 *    The __ro_after_init ones are in pmalloc/compat/cache.h. tests/misuse checks each.
 */
#ifndef PMALLOC_PMALLOC_H_
#define PMALLOC_PMALLOC_H_

#include <stddef.h>

#if defined(__GNUC__)
#define PMALLOC_EXPORT __attribute__((visibility("default")))
#else
#define PMALLOC_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct pmalloc_pool; /* opaque */

/* Pool flags. */
#define PMALLOC_POOL_GROWABLE (1u << 0)   /* may allocate again after protect: new area */
#define PMALLOC_POOL_MANUAL (1u << 1)     /* left out of pmalloc_lockdown() */
#define PMALLOC_POOL_WRITE_RARE (1u << 2) /* after protect, changed only by pmalloc_wr_* */

/* Lockdown flags. */
#define PMALLOC_LOCKDOWN_SEAL (1u << 0) /* also mseal(2) every locked pool: irreversible */

/* Longest pool name accepted by pmalloc_create_pool (bytes, without the NUL). */
#define PMALLOC_NAME_MAX 63

/* Creates an empty pool. `name` (1..PMALLOC_NAME_MAX bytes) names its areas in
 * /proc/PID/maps as "pmalloc:<name>". `refill` is the minimum area size, rounded up to
 * whole pages (0: 64 KiB). Every allocation is aligned to 1 << align_order bytes
 * (0: 16, the malloc default; at most 21, 2 MiB: each allocation of the pool takes at least
 * 1 << align_order bytes of the process's pool window, so larger pool alignments would
 * exhaust it after a few allocations; per-call alignment goes up to 1 GiB).
 * Errors: EINVAL (NULL/empty/too long name, bad align_order, unknown flags), ENOMEM. */
PMALLOC_EXPORT struct pmalloc_pool *pmalloc_create_pool(const char *name, size_t refill,
                                                        unsigned short align_order, unsigned flags);

/* Makes sure the pool can serve `size` more bytes without taking a new area.
 * Errors: EINVAL (NULL pool), EPERM (protected, not growable), ENOMEM. */
PMALLOC_EXPORT int pmalloc_prealloc(struct pmalloc_pool *pool, size_t size);

/* Allocates `size` bytes from the pool (size 0 behaves like malloc(0): a unique pointer).
 * On a protected pool: a GROWABLE pool opens a fresh area, otherwise EPERM.
 * Errors: EINVAL (NULL pool), EPERM, ENOMEM (also on size overflow). Cost: O(1) amortised;
 * one lock, no syscall unless a new area is needed. */
#ifndef __cplusplus
PMALLOC_EXPORT void *pmalloc(struct pmalloc_pool *pool, size_t size);
#endif
/* As pmalloc, with the memory zeroed. */
PMALLOC_EXPORT void *pzalloc(struct pmalloc_pool *pool, size_t size);
/* n * size bytes; ENOMEM when the product overflows. */
PMALLOC_EXPORT void *pmalloc_array(struct pmalloc_pool *pool, size_t n, size_t size);
/* As pmalloc_array, zeroed. */
PMALLOC_EXPORT void *pcalloc(struct pmalloc_pool *pool, size_t n, size_t size);
/* Copies the NUL-terminated string `s` into the pool. EINVAL for a NULL string. */
PMALLOC_EXPORT char *pstrdup(struct pmalloc_pool *pool, const char *s);
/* pmalloc with an explicit alignment (a power of two; at least the pool's own).
 * Errors: as pmalloc, plus EINVAL for an alignment that is not a power of two, and ENOMEM
 * for one above 1 GiB (as glibc: a valid alignment that cannot be satisfied). */
PMALLOC_EXPORT void *pmalloc_aligned(struct pmalloc_pool *pool, size_t size, size_t align);

/* Releases an allocation. Before the pool is protected the memory is reused; after, it is
 * only un-accounted (stats.freed_after_protect_bytes) until the pool is destroyed.
 * pfree(pool, NULL) does nothing. Aborts on an invalid pointer or a double free.
 * A NULL or invalid pool handle with a non-NULL pointer is misuse of the call, not memory
 * corruption: nothing is freed, errno is set to EINVAL and one line on stderr names both. */
PMALLOC_EXPORT void pfree(struct pmalloc_pool *pool, const void *ptr);

/* Usable size of a live pool allocation (at least the requested size), 0 if `ptr` is not
 * the start of a live allocation of any pool. */
PMALLOC_EXPORT size_t pmalloc_usable_size(const void *ptr);

/* Makes every area of the pool read-only. Any later write to the pool's allocations kills
 * the process with SIGSEGV; reads keep working. What is left of the current area is
 * relinquished: it is never written again. Cost: one mprotect(PROT_READ) per writable
 * area. Under the default PMALLOC_CONF protect:shared writable areas are MAP_SHARED on a
 * memfd of the pool, so once read-only /proc/PID/mem and ptrace cannot write them either;
 * areas that are private (privatised by fork, or no memfd was available) are copied onto
 * a read-only memfd mapping after their mprotect, and if that fails they keep the
 * mprotect, with one line on stderr. Areas already read-only are left as they are.
 * Errors: EINVAL (NULL pool), or the errno of the mprotect that failed after the move did
 * (the areas that could be protected stay protected). */
PMALLOC_EXPORT int pmalloc_protect_pool(struct pmalloc_pool *pool);

/* Protects the pool if needed, then seals its areas with mseal(2): they can never be made
 * writable, unmapped or remapped again, and the pool can never be destroyed. An empty pool
 * is sealed too: is_sealed reports 1, destroy fails with EPERM, and unless GROWABLE it
 * never allocates again (EPERM). A GROWABLE pool may still open new areas, which stay
 * writable (is_sealed 0) until the next seal or sealed lockdown.
 * Errors: ENOSYS when the kernel has no mseal (the pool is still protected). */
PMALLOC_EXPORT int pmalloc_seal_pool(struct pmalloc_pool *pool);

/* Returns the pool's pages to the system; none of its addresses stays mapped (they become
 * inaccessible reserved address space). The handle is invalid afterwards.
 * Errors: EINVAL (NULL pool), EBUSY (live allocations; memory pfree'd after protect counts
 * as released; pool left intact), EPERM (sealed pool). */
PMALLOC_EXPORT int pmalloc_destroy_pool(struct pmalloc_pool *pool);

/* Protects every pool not created with PMALLOC_POOL_MANUAL, and every range registered
 * with pmalloc_register_lockdown_range; with PMALLOC_LOCKDOWN_SEAL also seals them.
 * Returns 0, or -1 with the errno of the first failure (every pool is still attempted;
 * ENOSYS when sealing is unsupported: the pools are still protected). May be called again
 * (also in a forked child): what is already protected or sealed is skipped, what is new
 * (areas a GROWABLE pool opened since, ranges registered since) is protected and sealed. */
PMALLOC_EXPORT int pmalloc_lockdown(unsigned flags);

/* Registers whole pages [start, start + len) that pmalloc_lockdown() makes read-only
 * (and seals with PMALLOC_LOCKDOWN_SEAL). Used for protected statics. If lockdown already
 * happened the range is protected at once. Under the default PMALLOC_CONF protect:shared
 * the pages are replaced by a read-only shared copy (so /proc/PID/mem cannot write them):
 * the bytes stay, but a file mapping registered here is no longer connected to its file.
 * Any number of ranges. Errors: EINVAL (NULL, len 0, not page-aligned), ENOMEM (no memory
 * for the range table), or the errno of mprotect. */
PMALLOC_EXPORT int pmalloc_register_lockdown_range(void *start, size_t len, const char *name);

/* The pool that owns `ptr` (any byte of a pool area), or NULL. Lock-free, O(1). */
PMALLOC_EXPORT struct pmalloc_pool *pmalloc_pool_of(const void *ptr);

/* 1 when `ptr` lies in a read-only pool area, else 0. Lock-free, O(1). */
PMALLOC_EXPORT int pmalloc_is_protected(const void *ptr);

/* For a byte of a range registered with pmalloc_register_lockdown_range: 1 once
 * pmalloc_lockdown has run (it protects every registered range, and later registrations at
 * once) or the range is sealed, 0 before; *name, when `name` is not NULL, gets the name the
 * range was registered with (NULL if none). -1 with errno ENOENT when `ptr` is in no
 * registered range. Pool memory is never in a registered range: see pmalloc_is_protected.
 * Lock-free and async-signal-safe; O(number of registered ranges). */
PMALLOC_EXPORT int pmalloc_is_protected_range(const void *ptr, const char **name);

/* The hardened-usercopy check (the kernel series' is_pmalloc_object), for code that copies
 * into or out of pool objects:
 *   1  when [ptr, ptr + n) lies inside one live pool allocation (its usable size, as
 *      pmalloc_usable_size reports it; protected or not);
 *   0  when the range touches no pool memory: NULL, heap, stack, statics (registered
 *      lockdown ranges too: pmalloc knows no object bounds in them), the guard gaps
 *      between areas, a destroyed pool's addresses; and n == 0 (an empty range touches
 *      nothing);
 *  -1  with errno EFAULT when it touches pool memory but not inside one live allocation:
 *      it crosses an allocation's start or end, an area's end, or lies in a freed or
 *      never allocated block; also when ptr + n wraps around the address space.
 * Lock-free, and safe against concurrent pmalloc/pfree on the pool (a racing pfree may make
 * the answer stale, never wrong memory reads); not against pmalloc_destroy_pool of that
 * pool. Cost: O(1) per pool area touched (plus a bitmap scan of one 64-bit word per 512
 * bytes of the allocation), one table load per 64 KiB of the range that lies in the pool
 * window outside any area; a range outside the window costs two compares. */
PMALLOC_EXPORT int pmalloc_check_object(const void *ptr, size_t n);

/* Name given at creation, or NULL for a NULL pool. */
PMALLOC_EXPORT const char *pmalloc_pool_name(const struct pmalloc_pool *pool);

/* Write-rare pools (PMALLOC_POOL_WRITE_RARE; docs/write-rare.md). Once protected (or sealed)
 * such a pool is read-only like any other, but these functions can still change its live
 * allocations, without ever making a mapping at the object's address writable: the pool keeps
 * its memfd descriptor open (close-on-exec, a high number), wr_memcpy and wr_memset pwrite(2)
 * it, wr_assign_ptr stores through a short-lived alias mapping of that one page at another
 * address. Every update is read back through `dst`; a mismatch aborts with
 *   "pmalloc: write-rare update of <addr> in pool '<name>' did not read back"
 * On a write-rare pool not protected yet (or an area opened since) they are plain stores.
 * Each returns 0, or -1 with errno, and then nothing was written:
 *   EINVAL  [dst, dst+n) is not entirely inside one live allocation of a write-rare pool (NULL,
 *           heap, stack, a plain pool, a freed block, past the allocation's end), `src`
 *           overlaps it (wr_memcpy), or `dst` is not 8-aligned (wr_assign_ptr);
 *   EPERM   the pool went through pmalloc_make_pool_ro (or, in a forked child, its areas
 *           were sealed: a child cannot be given its own copy of sealed pages);
 *   EIO     the allocation's area could not be moved onto the pool's memfd at protect (it is
 *           protected with mprotect only; a line on stderr said so);
 *   EBADF   the program closed the pool's descriptor;
 *   or the errno of pwrite/mmap.
 * Thread-safe: updates of one pool are serialized by its lock (as are its allocation, protect,
 * fork and destroy). Cost (docs/write-rare.md): one pwrite and one fstat for wr_memcpy /
 * wr_memset (plus the read-back), an mmap, a page fault and an munmap for wr_assign_ptr.
 * Under PMALLOC_CONF=disable:true pools are plain memory and these are plain stores. */
PMALLOC_EXPORT int pmalloc_wr_memcpy(void *dst, const void *src, size_t n);
PMALLOC_EXPORT int pmalloc_wr_memset(void *dst, int c, size_t n);
/* Stores the pointer `value` into `*(void **)dst` as one atomic 8-byte store (release):
 * concurrent readers (an acquire load) see the old or the new pointer, never a mix. */
PMALLOC_EXPORT int pmalloc_wr_assign_ptr(void *dst, const void *value);
/* Protects the pool if needed and closes its memfd descriptor: a write-rare pool becomes an
 * ordinary protected pool for good, and pmalloc_wr_* on it fail with EPERM.
 * Errors: EINVAL (NULL pool, or not a write-rare pool), or those of pmalloc_protect_pool. */
PMALLOC_EXPORT int pmalloc_make_pool_ro(struct pmalloc_pool *pool);

struct pmalloc_stats {
  size_t live_bytes;                /* usable bytes of live allocations */
  size_t live_allocs;               /* number of live allocations */
  size_t mapped_bytes;              /* bytes of pages mapped for the pool's areas */
  size_t freed_after_protect_bytes; /* pfree'd after protection: leaked until destroy */
  size_t areas;                     /* number of areas */
  int is_protected;                 /* 1 when no area of the pool is writable */
  int is_sealed;                    /* 1 when every area is sealed */
};

/* Fills `out` with a consistent snapshot. Errors: EINVAL (NULL argument). */
PMALLOC_EXPORT int pmalloc_pool_stats(const struct pmalloc_pool *pool, struct pmalloc_stats *out);

/* The process-wide default lockable pool (GROWABLE, included in pmalloc_lockdown), created
 * on first use under the name "default". The target of GFP_LOCKABLE. NULL with ENOMEM if
 * it cannot be created. */
PMALLOC_EXPORT struct pmalloc_pool *pmalloc_default_pool(void);

/* Tagging scope of the calling thread. While a pool is in scope, every allocation made on
 * this thread through the libc face (malloc, calloc, realloc(NULL, n), memalign & co,
 * operator new: STL containers and third-party code included) comes from that pool, when
 * libpmalloc is linked or preloaded as the process's allocator. free/delete of such memory
 * later, from any thread and any scope, returns it to its pool. realloc keeps a block
 * where it is (a pool block stays in its pool; fails with EPERM once protected).
 * pmalloc_scope_enter(pool) sets the scope and returns the previous one (NULL: untagged);
 * pmalloc_scope_exit(prev) restores it. A NULL pool makes the thread untagged.
 * Errors: EINVAL for an invalid pool, or one created with align_order 1-3 (malloc and new
 * promise 16-byte alignment); the scope is then unchanged. Under PMALLOC_CONF=disable:true
 * the scope stays untagged. Cost: one thread-local store. Async-signal-safe. */
PMALLOC_EXPORT struct pmalloc_pool *pmalloc_scope_enter(struct pmalloc_pool *pool);
PMALLOC_EXPORT void pmalloc_scope_exit(struct pmalloc_pool *prev);
/* The calling thread's current scope, or NULL. */
PMALLOC_EXPORT struct pmalloc_pool *pmalloc_scope_current(void);

#ifdef __cplusplus
} /* extern "C" */

/* In C++ `pmalloc` is also the namespace of the C++ API (pmalloc.hpp), and a namespace and a
 * function cannot share a name. The C function is therefore declared inside that namespace
 * (same symbol, C linkage), and a function-like macro lets C++ code call it exactly as C
 * does: `pmalloc(pool, size)`. `pmalloc::Pool` and other uses not followed by '(' are
 * untouched. To take its address in C++, write `&::pmalloc::pmalloc`. */
namespace pmalloc {
extern "C" PMALLOC_EXPORT void *pmalloc(struct pmalloc_pool *pool, size_t size);
}  // namespace pmalloc
#define pmalloc(pool, size) (::pmalloc::pmalloc)((pool), (size))
#endif

#endif /* PMALLOC_PMALLOC_H_ */
