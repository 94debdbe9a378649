/* pmalloc/compat/vmalloc.h — vmalloc & co. In userspace there is no separate virtual
 * allocator: vmalloc is heap memory (large heap allocations are page-aligned mappings
 * anyway) and __vmalloc routes by its gfp flags like kmalloc. As in the kernel, a size of
 * 0 gives NULL (errno EINVAL). vfree accepts NULL, ZERO_SIZE_PTR, heap and pool memory. */
#ifndef PMALLOC_COMPAT_VMALLOC_H_
#define PMALLOC_COMPAT_VMALLOC_H_

#include <pmalloc/compat/slab.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline void *__vmalloc(size_t size, gfp_t flags) {
  if (size == 0) {
    errno = EINVAL;
    return NULL;
  }
  return pmalloc_kmalloc(size, flags);
}
static inline void *vmalloc(size_t size) { return __vmalloc(size, GFP_KERNEL); }
static inline void *vzalloc(size_t size) { return __vmalloc(size, GFP_KERNEL | __GFP_ZERO); }
static inline void vfree(const void *p) { pmalloc_kfree(p); }

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PMALLOC_COMPAT_VMALLOC_H_ */
