// The only code in pmalloc that calls mmap, mprotect, mseal, madvise, prctl and
// memfd_create. Contract (as mimalloc's os layer): addresses are page-aligned, sizes are
// non-zero page multiples; functions return true on success and leave errno set on failure.
// Nothing here allocates or locks, so it is safe on the malloc path and after fork.
#ifndef PMALLOC_CORE_PLATFORM_H_
#define PMALLOC_CORE_PLATFORM_H_

#include <cstddef>
#include <cstdint>

namespace pmalloc::internal::platform {

// Page size of the running system (cached; async-signal-safe after the first call).
size_t PageSize();

// Reserves `size` bytes of inaccessible address space (PROT_NONE, MAP_NORESERVE), aligned
// to `align` (a power of two >= page size). Returns nullptr on failure.
void* Reserve(size_t size, size_t align);

// Maps `size` bytes of zeroed read-write private anonymous memory for metadata, anywhere
// (MAP_NORESERVE: only touched pages cost memory). Returns nullptr on failure.
void* AllocatePages(size_t size);
[[nodiscard]] bool FreePages(void* addr, size_t size);

// Maps fresh zeroed read-write private memory at `addr` over reserved space. The mapping is
// backed by a memfd named `name` so /proc/PID/maps shows "/memfd:<name>" on every kernel
// (anonymous VMA names need CONFIG_ANON_VMA_NAME); MAP_PRIVATE keeps fork's copy semantics.
[[nodiscard]] bool MapArea(void* addr, size_t size, const char* name);

// Returns [addr, addr+size) to reserved, inaccessible address space (pages are freed).
[[nodiscard]] bool Unmap(void* addr, size_t size);

[[nodiscard]] bool ProtectReadOnly(void* addr, size_t size);
[[nodiscard]] bool ProtectReadWrite(void* addr, size_t size);

// mseal(2). errno ENOSYS when the kernel lacks it.
[[nodiscard]] bool Seal(void* addr, size_t size);

// Drops the pages of a private read-write range so they read back as zero.
[[nodiscard]] bool Discard(void* addr, size_t size);

}  // namespace pmalloc::internal::platform

#endif  // PMALLOC_CORE_PLATFORM_H_
