/* pmalloc/compat/slab.h — kmalloc & co with the kernel's semantics, in userspace.
 *
 * Where memory comes from is decided by the gfp flags (see gfp.h): the heap (malloc/free)
 * by default, the default lockable pool with GFP_LOCKABLE, a chosen pool with a zone bit.
 * The free side needs no flags: kfree() asks pmalloc_pool_of() whether the pointer is pool
 * memory (one range check, lock-free) and otherwise calls free().
 *
 * Kernel semantics kept:
 *  - kmalloc(0, ...) returns ZERO_SIZE_PTR, which must not be dereferenced; kfree, ksize,
 *    krealloc and kfree_sensitive accept it (and NULL) as "nothing".
 *  - the array forms fail (NULL, errno ENOMEM) when n * size overflows.
 *  - krealloc keeps the memory's home: pool memory stays in its pool, heap memory stays on
 *    the heap — unless the flags name a pool (GFP_LOCKABLE or a zone), then the result is
 *    in that pool (moving it across pools or from/to the heap). If the new size fits in
 *    ksize(p), p is returned unchanged. On failure p is untouched.
 *    __GFP_ZERO zeroes from the old ksize() up (as the kernel: every krealloc of that
 *    object must pass __GFP_ZERO for the whole object to be zero).
 *  - kfree of an object in a protected pool only un-accounts it (pfree semantics): its
 *    pages stay read-only until the pool is destroyed.
 *  - kfree_sensitive zeroes ksize() bytes with explicit_bzero (not optimised away) before
 *    freeing. An object in a protected (read-only) pool cannot be zeroed: it is released
 *    for accounting only and its bytes stay, read-only, until the pool is destroyed.
 * Errors: NULL with errno ENOMEM (no memory, overflow), EPERM (protected pool that cannot
 * grow), EINVAL (invalid pool bits). Misuse (kfree of a pointer that is inside a pool but
 * not the start of a live allocation, double kfree of pool memory) aborts with pfree's
 * fixed message; kfree of a pointer of a destroyed pool with free()'s (pmalloc.h). All functions
 * are thread-safe. Cost: heap memory costs one function call and one range check over malloc/free;
 * pool memory costs a pool lock (pmalloc()).
 */
#ifndef PMALLOC_COMPAT_SLAB_H_
#define PMALLOC_COMPAT_SLAB_H_

#include <errno.h>
#include <pmalloc/compat/gfp.h>
#include <stddef.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* kmalloc(0) result: a non-NULL pointer that faults when dereferenced. */
#define ZERO_SIZE_PTR ((void *)16)
#define ZERO_OR_NULL_PTR(x) ((unsigned long)(x) <= (unsigned long)ZERO_SIZE_PTR)

#if defined(__GNUC__)
#define PMALLOC_COMPAT_ALLOC __attribute__((warn_unused_result, alloc_size(1)))
#else
#define PMALLOC_COMPAT_ALLOC
#endif

/* Out-of-line implementations (libpmalloc.so). Use the kernel names below. */
PMALLOC_EXPORT void *pmalloc_kmalloc(size_t size, gfp_t flags) PMALLOC_COMPAT_ALLOC;
PMALLOC_EXPORT void *pmalloc_krealloc(const void *p, size_t new_size, gfp_t flags);
PMALLOC_EXPORT void pmalloc_kfree(const void *p);
PMALLOC_EXPORT void pmalloc_kfree_sensitive(const void *p);
PMALLOC_EXPORT size_t pmalloc_ksize(const void *p);
PMALLOC_EXPORT char *pmalloc_kstrdup(const char *s, gfp_t flags);
PMALLOC_EXPORT char *pmalloc_kstrndup(const char *s, size_t max, gfp_t flags);
PMALLOC_EXPORT void *pmalloc_kmemdup(const void *src, size_t len, gfp_t flags);

/* `size` bytes from where `flags` route (heap, default lockable pool, zone). With flags
 * known at compile time to name no pool, this is malloc (or calloc for __GFP_ZERO) inline:
 * GFP_KERNEL code costs what it cost before the port. */
static inline void *kmalloc(size_t size, gfp_t flags) {
  if (__builtin_constant_p(flags) && (flags & PMALLOC_GFP_POOL_MASK) == 0) {
    if (size == 0) return ZERO_SIZE_PTR;
    return (flags & __GFP_ZERO) ? calloc(1, size) : malloc(size);
  }
  return pmalloc_kmalloc(size, flags);
}
static inline void *kzalloc(size_t size, gfp_t flags) { return kmalloc(size, flags | __GFP_ZERO); }
/* n * size bytes; NULL with ENOMEM on overflow. */
static inline void *kmalloc_array(size_t n, size_t size, gfp_t flags) {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return NULL;
  }
  return kmalloc(bytes, flags);
}
static inline void *kcalloc(size_t n, size_t size, gfp_t flags) {
  return kmalloc_array(n, size, flags | __GFP_ZERO);
}
static inline void *krealloc(const void *p, size_t new_size, gfp_t flags) {
  return pmalloc_krealloc(p, new_size, flags);
}
static inline void *krealloc_array(void *p, size_t n, size_t size, gfp_t flags) {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return NULL;
  }
  return pmalloc_krealloc(p, bytes, flags);
}
/* NULL and ZERO_SIZE_PTR: no-op. Heap or pool memory, protected or not. */
static inline void kfree(const void *p) { pmalloc_kfree(p); }
static inline void kfree_sensitive(const void *p) { pmalloc_kfree_sensitive(p); }
/* Usable size (>= the requested size); 0 for NULL and ZERO_SIZE_PTR. */
static inline size_t ksize(const void *p) { return pmalloc_ksize(p); }
/* NULL for a NULL string (not an error, errno untouched). */
static inline char *kstrdup(const char *s, gfp_t flags) { return pmalloc_kstrdup(s, flags); }
/* At most `max` bytes of `s`, always NUL-terminated (max 0 gives ""). NULL for NULL s. */
static inline char *kstrndup(const char *s, size_t max, gfp_t flags) {
  return pmalloc_kstrndup(s, max, flags);
}
/* A copy of len bytes; len 0 gives ZERO_SIZE_PTR. NULL src with len > 0: EINVAL. */
static inline void *kmemdup(const void *src, size_t len, gfp_t flags) {
  return pmalloc_kmemdup(src, len, flags);
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PMALLOC_COMPAT_SLAB_H_ */
