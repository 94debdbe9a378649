/* pmalloc/compat/gfp.h — kernel-style allocation flags (gfp_t) for userspace.
 *
 * Layering: compat/ may include core's public header pmalloc/pmalloc.h; core/ knows nothing
 * of compat/.
 *
 * The reclaim/IO flags exist so kernel code compiles unchanged; in userspace an allocation
 * never sleeps in a way the caller controls, so they have no effect. What matters here:
 *   __GFP_ZERO      the memory is zeroed.
 *   GFP_LOCKABLE    the memory comes from the default lockable pool
 *                   (pmalloc_default_pool()), made read-only by pmalloc_lockdown().
 *   zone bits       from pmalloc_gfp_zone(pool): the memory comes from `pool`.
 * Without a pool bit, memory comes from the normal heap (malloc).
 *
 * Feature switch: compile with -DPMALLOC_LOCKABLE=0 and GFP_LOCKABLE is GFP_KERNEL, zones
 * are 0 and __ro_after_init is empty: the code generated is exactly that of the unported
 * source (checked by the test compat_fallback_same_code). Translation units built with
 * different settings mix safely (kfree asks where each pointer lives). At run time
 * PMALLOC_CONF=disable:true (read by core/, like every PMALLOC_CONF key) makes every pool
 * allocation plain jemalloc memory; compat follows it with no code of its own.
 */
#ifndef PMALLOC_COMPAT_GFP_H_
#define PMALLOC_COMPAT_GFP_H_

#include <pmalloc/pmalloc.h>

#ifndef PMALLOC_LOCKABLE
#define PMALLOC_LOCKABLE 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef unsigned int gfp_t;

/* Accepted, no effect in userspace. */
#define __GFP_IO ((gfp_t)0x01u)
#define __GFP_FS ((gfp_t)0x02u)
#define __GFP_DIRECT_RECLAIM ((gfp_t)0x04u)
#define __GFP_KSWAPD_RECLAIM ((gfp_t)0x08u)
#define __GFP_RECLAIM (__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM)
#define __GFP_HIGH ((gfp_t)0x10u)
#define __GFP_NOWARN ((gfp_t)0x40u) /* pmalloc never warns on failure anyway */
/* Zero the memory. */
#define __GFP_ZERO ((gfp_t)0x20u)

#define GFP_KERNEL (__GFP_RECLAIM | __GFP_IO | __GFP_FS)
#define GFP_ATOMIC (__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
#define GFP_NOWAIT (__GFP_KSWAPD_RECLAIM)

/* Pool routing: the top 8 bits, one-hot. Bit 24 is the default lockable pool; bits 25..31
 * are the PMALLOC_GFP_ZONES zones handed out by pmalloc_gfp_zone(). Setting two of them is
 * an error (EINVAL), never a silent choice. */
#define __GFP_LOCKABLE ((gfp_t)1u << 24)
#define PMALLOC_GFP_ZONES 7
#define PMALLOC_GFP_ZONE_MASK ((gfp_t)0xfe000000u)
#define PMALLOC_GFP_POOL_MASK (__GFP_LOCKABLE | PMALLOC_GFP_ZONE_MASK)

#if PMALLOC_LOCKABLE
#define GFP_LOCKABLE (GFP_KERNEL | __GFP_LOCKABLE)

/* Hands out the zone bit that routes kmalloc & co to `pool`: `kmalloc(n, GFP_KERNEL | z)`.
 * The same pool always gets the same bit; the default pool gets __GFP_LOCKABLE.
 * Returns 0 with errno set on error — and 0 is also a valid "no pool" value, so an
 * unchecked 0 only means the memory comes from the heap, unprotected:
 *   EINVAL  NULL or invalid pool handle.
 *   ENOSPC  all PMALLOC_GFP_ZONES zones are taken (release one with
 *           pmalloc_gfp_zone_release).
 *   EPERM   pmalloc_lockdown() has run: the zone table is itself read-only then.
 * Thread-safe (one mutex); lookups by kmalloc are lock-free. Assign zones at start-up. */
PMALLOC_EXPORT gfp_t pmalloc_gfp_zone(struct pmalloc_pool *pool);

/* Releases a zone bit from pmalloc_gfp_zone so another pool can take it. Allocations made
 * through it stay valid (they belong to the pool, not the bit); later kmalloc calls with the
 * bit fail with EINVAL until it is handed out again. Release a pool's zone before
 * destroying the pool. Returns 0, or -1 with errno: EINVAL (not exactly one assigned zone
 * bit), EPERM (after lockdown). */
PMALLOC_EXPORT int pmalloc_gfp_zone_release(gfp_t zone);
#else
#define GFP_LOCKABLE GFP_KERNEL
/* Feature off: no pool routing, every zone is "the heap". */
#define pmalloc_gfp_zone(pool) ((void)(pool), (gfp_t)0)
#define pmalloc_gfp_zone_release(zone) ((void)(zone), 0)
#endif

/* The pool that `flags` routes to: NULL for the heap (no pool bit). With an invalid
 * combination or an unassigned zone bit: NULL with errno EINVAL — use
 * pmalloc_gfp_valid() to tell the two apart. Lock-free, O(1). */
PMALLOC_EXPORT struct pmalloc_pool *pmalloc_gfp_pool(gfp_t flags);
/* 1 when `flags` is usable (no pool bit, or exactly one assigned pool bit), else 0. */
PMALLOC_EXPORT int pmalloc_gfp_valid(gfp_t flags);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PMALLOC_COMPAT_GFP_H_ */
