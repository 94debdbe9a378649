// Allocator for pmalloc's own metadata. It calls jemalloc's non-standard API directly, so
// metadata never lands on pool pages and never re-enters pmalloc's malloc face (which could
// route it into a tagged pool while a scope is active).
#ifndef PMALLOC_CORE_META_ALLOCATOR_H_
#define PMALLOC_CORE_META_ALLOCATOR_H_

#include <cstddef>
#include <new>

namespace pmalloc::internal {

// Raw metadata memory; returns nullptr on failure. `zero` gives zeroed memory.
void* MetaAlloc(size_t size, bool zero = false);
void MetaFree(void* p);

template <class T>
struct MetaAllocator {
  using value_type = T;
  MetaAllocator() = default;
  template <class U>
  MetaAllocator(const MetaAllocator<U>&) {}  // NOLINT: allocator conversion
  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    void* p = MetaAlloc(n * sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { MetaFree(p); }
  template <class U>
  bool operator==(const MetaAllocator<U>&) const {
    return true;
  }
  template <class U>
  bool operator!=(const MetaAllocator<U>&) const {
    return false;
  }
};

// new/delete for metadata objects.
template <class T, class... Args>
T* MetaNew(Args&&... args) {
  void* p = MetaAlloc(sizeof(T));
  if (p == nullptr) return nullptr;
  return new (p) T(static_cast<Args&&>(args)...);
}

template <class T>
void MetaDelete(T* p) {
  if (p == nullptr) return;
  p->~T();
  MetaFree(p);
}

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_META_ALLOCATOR_H_
