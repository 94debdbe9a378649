#include "preload/jemalloc_entry.h"

#include <dlfcn.h>
#include <errno.h>

#include <new>

#include "absl/base/attributes.h"
#include "preload/route.h"  // NewFailed: the stand-ins for operator new share its loop

namespace pmalloc::internal::route {
namespace {

// mallocx-based stand-ins used until jemalloc's own entry points are resolved. jemalloc's
// *allocx API never sets errno, so these do.
void* MallocX(size_t size) noexcept {
  void* p = mallocx(size == 0 ? 1 : size, 0);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

void FreeX(void* p) noexcept {
  if (p != nullptr) dallocx(p, 0);
}

void* CallocX(size_t n, size_t size) noexcept {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  void* p = mallocx(bytes == 0 ? 1 : bytes, MALLOCX_ZERO);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

void* ReallocX(void* p, size_t size) noexcept {  // REQUIRES: p != nullptr, size != 0
  void* q = rallocx(p, size, 0);
  if (q == nullptr) errno = ENOMEM;
  return q;
}

void* NewX(size_t size) {
  void* p = MallocX(size);
  return p != nullptr ? p : NewFailed(size, 0, false);
}
void* NewNothrowX(size_t size, const std::nothrow_t&) noexcept {
  void* p = MallocX(size);
  return p != nullptr ? p : NewFailed(size, 0, true);
}
void* NewAlignedX(size_t size, std::align_val_t align) {
  void* p = AlignedUntagged(static_cast<size_t>(align), size);
  return p != nullptr ? p : NewFailed(size, static_cast<size_t>(align), false);
}
void* NewAlignedNothrowX(size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  void* p = AlignedUntagged(static_cast<size_t>(align), size);
  return p != nullptr ? p : NewFailed(size, static_cast<size_t>(align), true);
}

void SizedDeleteX(void* p, size_t size) noexcept {
  if (p != nullptr) sdallocx(p, size, 0);
}
void SizedAlignedDeleteX(void* p, size_t size, std::align_val_t align) noexcept {
  if (p != nullptr) sdallocx(p, size, MALLOCX_ALIGN(static_cast<size_t>(align)));
}

// Resolves jemalloc's malloc/free/calloc/realloc: the library that defines mallocx is
// jemalloc, and dlsym on its handle finds its own definitions, not the face's. Runs before
// any other constructor of this library; dlopen may call malloc, which is fine here since
// the stand-ins serve it.
__attribute__((constructor(101))) void ResolveJemalloc() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&mallocx), &info) == 0 || info.dli_fname == nullptr) {
    return;
  }
  void* handle = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return;
  auto* m = reinterpret_cast<void* (*)(size_t) noexcept>(dlsym(handle, "malloc"));
  auto* f = reinterpret_cast<void (*)(void*) noexcept>(dlsym(handle, "free"));
  auto* c = reinterpret_cast<void* (*)(size_t, size_t) noexcept>(dlsym(handle, "calloc"));
  auto* r = reinterpret_cast<void* (*)(void*, size_t) noexcept>(dlsym(handle, "realloc"));
  auto* n = reinterpret_cast<void* (*)(size_t)>(dlsym(handle, "_Znwm"));
  auto* nn = reinterpret_cast<void* (*)(size_t, const std::nothrow_t&) noexcept>(
      dlsym(handle, "_ZnwmRKSt9nothrow_t"));
  auto* na =
      reinterpret_cast<void* (*)(size_t, std::align_val_t)>(dlsym(handle, "_ZnwmSt11align_val_t"));
  auto* nan = reinterpret_cast<void* (*)(size_t, std::align_val_t, const std::nothrow_t&) noexcept>(
      dlsym(handle, "_ZnwmSt11align_val_tRKSt9nothrow_t"));
  auto* sd = reinterpret_cast<void (*)(void*, size_t) noexcept>(dlsym(handle, "_ZdlPvm"));
  auto* sad = reinterpret_cast<void (*)(void*, size_t, std::align_val_t) noexcept>(
      dlsym(handle, "_ZdlPvmSt11align_val_t"));
  // All or nothing, and only if dlsym found jemalloc's own (not a face interposing it).
  Dl_info mi;
  Dl_info ni;
  if (m == nullptr || f == nullptr || c == nullptr || r == nullptr || n == nullptr ||
      nn == nullptr || na == nullptr || nan == nullptr || sd == nullptr || sad == nullptr ||
      dladdr(reinterpret_cast<void*>(m), &mi) == 0 || mi.dli_fbase != info.dli_fbase ||
      dladdr(reinterpret_cast<void*>(n), &ni) == 0 || ni.dli_fbase != info.dli_fbase) {
    return;
  }
  RoWrite w;
  if (!w.ok()) return;
  JeFns* to = w.At(&je);
  to->malloc.store(m, std::memory_order_relaxed);
  to->free.store(f, std::memory_order_relaxed);
  to->calloc.store(c, std::memory_order_relaxed);
  to->realloc.store(r, std::memory_order_relaxed);
  to->new_.store(n, std::memory_order_relaxed);
  to->new_nothrow.store(nn, std::memory_order_relaxed);
  to->new_aligned.store(na, std::memory_order_relaxed);
  to->new_aligned_nothrow.store(nan, std::memory_order_relaxed);
  to->sized_delete.store(sd, std::memory_order_relaxed);
  to->sized_aligned_delete.store(sad, std::memory_order_relaxed);
  // The handle is deliberately kept: jemalloc is a dependency and is never unloaded.
}

}  // namespace

ABSL_CONST_INIT PMALLOC_RO_STATE JeFns je = {{&MallocX},      {&FreeX},
                                             {&CallocX},      {&ReallocX},
                                             {&NewX},         {&NewNothrowX},
                                             {&NewAlignedX},  {&NewAlignedNothrowX},
                                             {&SizedDeleteX}, {&SizedAlignedDeleteX}};

void* AlignedUntagged(size_t align, size_t size) noexcept {
  void* p = mallocx(size == 0 ? 1 : size, MALLOCX_ALIGN(align));
  if (p == nullptr) errno = ENOMEM;
  return p;
}

}  // namespace pmalloc::internal::route
