// Every replaceable C++ operator new/delete (8 new, 12 delete forms), forwarded to
// preload/route.h. new throws std::bad_alloc after the new_handler loop; the nothrow forms
// return nullptr. Sized deletes pass the size on to jemalloc (sdallocx), which skips a
// size lookup; pool pointers go back to their pool whatever the form.
#include <cstddef>
#include <new>

#include "pmalloc/pmalloc.h"
#include "preload/route.h"

namespace route = pmalloc::internal::route;

PMALLOC_EXPORT void* operator new(size_t n) { return route::New(n); }
PMALLOC_EXPORT void* operator new[](size_t n) { return route::New(n); }
PMALLOC_EXPORT void* operator new(size_t n, const std::nothrow_t&) noexcept {
  return route::NewNothrow(n);
}
PMALLOC_EXPORT void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return route::NewNothrow(n);
}
PMALLOC_EXPORT void* operator new(size_t n, std::align_val_t a) { return route::NewAligned(n, a); }
PMALLOC_EXPORT void* operator new[](size_t n, std::align_val_t a) {
  return route::NewAligned(n, a);
}
PMALLOC_EXPORT void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return route::NewAlignedNothrow(n, a);
}
PMALLOC_EXPORT void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return route::NewAlignedNothrow(n, a);
}

PMALLOC_EXPORT void operator delete(void* p) noexcept { route::Free(p); }
PMALLOC_EXPORT void operator delete[](void* p) noexcept { route::Free(p); }
PMALLOC_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { route::Free(p); }
PMALLOC_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { route::Free(p); }
PMALLOC_EXPORT void operator delete(void* p, size_t n) noexcept { route::SizedFree(p, n); }
PMALLOC_EXPORT void operator delete[](void* p, size_t n) noexcept { route::SizedFree(p, n); }
PMALLOC_EXPORT void operator delete(void* p, std::align_val_t) noexcept { route::Free(p); }
PMALLOC_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { route::Free(p); }
PMALLOC_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  route::Free(p);
}
PMALLOC_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  route::Free(p);
}
PMALLOC_EXPORT void operator delete(void* p, size_t n, std::align_val_t a) noexcept {
  route::SizedAlignedFree(p, n, a);
}
PMALLOC_EXPORT void operator delete[](void* p, size_t n, std::align_val_t a) noexcept {
  route::SizedAlignedFree(p, n, a);
}
