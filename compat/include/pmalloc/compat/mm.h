/* pmalloc/compat/mm.h — kvmalloc & co. The kernel tries kmalloc and falls back to vmalloc
 * for large sizes; in userspace both are the same allocator, so kvmalloc is kmalloc with
 * the same routing (GFP_LOCKABLE and zones work, also for large sizes) and kvfree is
 * kfree. */
#ifndef PMALLOC_COMPAT_MM_H_
#define PMALLOC_COMPAT_MM_H_

#include <pmalloc/compat/slab.h>
#include <pmalloc/compat/vmalloc.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline void *kvmalloc(size_t size, gfp_t flags) { return kmalloc(size, flags); }
static inline void *kvzalloc(size_t size, gfp_t flags) { return kzalloc(size, flags); }
static inline void *kvmalloc_array(size_t n, size_t size, gfp_t flags) {
  return kmalloc_array(n, size, flags);
}
static inline void *kvcalloc(size_t n, size_t size, gfp_t flags) { return kcalloc(n, size, flags); }
static inline void kvfree(const void *p) { kfree(p); }
static inline void kvfree_sensitive(const void *p, size_t len) {
  (void)len; /* ksize() is known: the whole object is zeroed */
  kfree_sensitive(p);
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PMALLOC_COMPAT_MM_H_ */
