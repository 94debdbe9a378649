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

// Maps fresh zeroed read-write private anonymous memory at `addr` over reserved space,
// named "[anon:<name>]" in /proc/PID/maps where the kernel allows it (CONFIG_ANON_VMA_NAME),
// with transparent huge pages requested for areas of 2 MiB or more. Anonymous, not a
// MAP_PRIVATE memfd: a write fault on a private file mapping also allocates the file's page,
// doubling the memory of every written page (measured: +64 MiB shmem for 64 MiB written).
// MAP_PRIVATE keeps fork's copy semantics.
[[nodiscard]] bool MapArea(void* addr, size_t size, const char* name);

// Returns [addr, addr+size) to reserved, inaccessible address space (pages are freed).
[[nodiscard]] bool Unmap(void* addr, size_t size);

[[nodiscard]] bool ProtectReadOnly(void* addr, size_t size);

// Moves the private read-write area [addr, addr+size) onto a read-only MAP_SHARED mapping of
// a new memfd named `name`, holding the same bytes, so that FOLL_FORCE writes
// (/proc/PID/mem, ptrace POKEDATA) fail with EIO as well as ordinary stores (docs/design.md §2).
// Only the first `used` bytes (rounded up to pages) are copied, and of those only the pages
// the process ever touched (per /proc/self/pagemap: present or swapped); the rest reads
// back as zero without costing memory. The copy goes through pwrite(2) into the memfd's
// page cache, then one mmap(MAP_FIXED) replaces the old mapping atomically: no window where
// the range is unmapped or writable; the old pages are freed.
// REQUIRES: nothing writes the range during the call (a store that lands after its page
// was copied would be lost): callers mprotect it read-only first. Cost: one copy of the touched
// bytes, one pwrite per run of touched pages, one pagemap read per 2 MiB, and a few more syscalls.
// Needs two descriptors during the call (one is enough: without pagemap every page up to `used` is
// copied); none after. On failure (errno from memfd_create, ftruncate, pwrite or mmap) the old
// mapping is left as it was. `pages` kAll copies every page up to `used` instead: for memory that
// is not anonymous (a module's file-backed .data, where a page never touched still holds the file's
// bytes).
enum class CopyPages { kTouched, kAll };
[[nodiscard]] bool RemapSharedReadOnly(void* addr, size_t size, size_t used, const char* name,
                                       CopyPages pages = CopyPages::kTouched);

[[nodiscard]] bool ProtectReadWrite(void* addr, size_t size);

// Maps one inaccessible (PROT_NONE) page at `addr`, over reserved space, as a MAP_SHARED
// memfd named `name`: a landmark that /proc/PID/maps shows on every kernel, so tools can find
// pmalloc's address ranges without ptrace (pmalloc-inspect). Costs no memory (the page is
// never touched) and no descriptor after the call. On failure (errno from memfd_create,
// ftruncate or mmap) the page stays reserved as it was.
[[nodiscard]] bool MapLandmark(void* addr, const char* name);

// mseal(2). errno ENOSYS when the kernel lacks it.
[[nodiscard]] bool Seal(void* addr, size_t size);

// Drops the pages of a private read-write range so they read back as zero.
[[nodiscard]] bool Discard(void* addr, size_t size);

}  // namespace pmalloc::internal::platform

#endif  // PMALLOC_CORE_PLATFORM_H_
