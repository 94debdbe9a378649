#include "preload/route.h"

#include <errno.h>

#include <new>

namespace pmalloc::internal::route {

void* TaggedAlloc(Pool* pool, size_t size, size_t align, bool zero) noexcept {
  return pool->Allocate(size, align, zero);
}

void* TaggedCalloc(Pool* pool, size_t n, size_t size) noexcept {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return pool->Allocate(bytes, 0, true);
}

void* ReallocEdge(void* p, size_t size) noexcept {
  if (size == 0) {
    je.free.load(std::memory_order_relaxed)(p);
  } else {
    errno = ENOMEM;  // p untouched
  }
  return nullptr;
}

void* TaggedNew(Pool* pool, size_t size, size_t align) {
  void* p = pool->Allocate(size, align, false);
  return p != nullptr ? p : NewFailed(size, align, false);
}

void* TaggedNewNothrow(Pool* pool, size_t size, size_t align) noexcept {
  void* p = pool->Allocate(size, align, false);
  return p != nullptr ? p : NewFailed(size, align, true);
}

void* NewFailed(size_t size, size_t align, bool nothrow) {
  for (;;) {
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    if (nothrow) {
      try {
        handler();
      } catch (const std::bad_alloc&) {
        return nullptr;
      }
    } else {
      handler();
    }
    void* p = align == 0 ? Malloc(size) : Memalign(align, size);
    if (p != nullptr) return p;
  }
}

}  // namespace pmalloc::internal::route
