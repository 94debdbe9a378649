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

// Which pages of a private range a move onto a memfd copies (RemapSharedReadOnly).
enum class CopyPages { kTouched, kAll };

// One pool's memfd (protect:shared): its writable areas are MAP_SHARED windows on it, at
// increasing offsets, so that protect is one mprotect(PROT_READ) (a read-only shared mapping
// refuses FOLL_FORCE writes: /proc/PID/mem, ptrace). `dev`/`ino` identify the file, so a
// descriptor number that the program closed and reused (close_range, closefrom, dup2) is
// noticed instead of truncating or mapping someone else's file.
struct PoolFile {
  int fd = -1;
  uint64_t dev = 0;
  uint64_t ino = 0;
  size_t size = 0;  // bytes ftruncate'd so far: the next area's offset
};

// memfd_create(name, MFD_CLOEXEC), moved to a descriptor >= kPoolFileMinFd when the limit
// allows (F_DUPFD_CLOEXEC: programs that expect their low descriptors, select() users and
// dup2 targets never meet it); otherwise the descriptor memfd_create returned. Costs 3-4
// syscalls. On failure (errno from memfd_create or fstat) `*out` is unchanged.
inline constexpr int kPoolFileMinFd = 512;
[[nodiscard]] bool OpenPoolFile(const char* name, PoolFile* out);

// True when `f.fd` still refers to the file OpenPoolFile opened (one fstat).
[[nodiscard]] bool PoolFileValid(const PoolFile& f);

// Grows `f` by `size` bytes (ftruncate, after a PoolFileValid check: errno EBADF when the
// descriptor is no longer ours) and maps the new part read-write MAP_SHARED|MAP_FIXED at
// `addr` over reserved space. `*offset` receives its file offset. On failure the file may be
// longer than needed (harmless: unmapped file pages cost nothing) and `addr` stays reserved.
[[nodiscard]] bool MapSharedArea(void* addr, size_t size, PoolFile* f, size_t* offset);

// Re-maps the shared area [addr, addr+size) (at `offset` of `f`) MAP_PRIVATE|MAP_FIXED,
// read-write, over the same file: the bytes stay (they are the file's pages), later stores
// are copy-on-write. The fork handler does this so that parent and child no longer share
// writable pool memory. One mmap; no copy.
[[nodiscard]] bool PrivatizeArea(void* addr, size_t size, const PoolFile& f, size_t offset);

// Write-rare pools (core/write_rare.h) keep their memfd open after protect, and every
// protected area of such a pool lives on it. The functions below serve them.

// Moves the private area [addr, addr+size) onto `f`: grows the file by `size` (the new part's
// offset goes to `*offset`), copies the first `used` bytes (rounded up to pages; `pages` as
// for RemapSharedReadOnly) into it and maps it read-only MAP_SHARED|MAP_FIXED at `addr`.
// REQUIRES: nothing writes the range (it is already mprotect'ed read-only). On failure
// (EBADF: the descriptor is no longer ours; errno of ftruncate, pwrite or mmap) the old
// mapping is left as it was and the file may be longer than needed.
[[nodiscard]] bool MoveToPoolFile(void* addr, size_t size, size_t used, CopyPages pages,
                                  PoolFile* f, size_t* offset);

// pwrite of `n` bytes from `src` at `offset` of `f`, growing the file when needed (the fork
// handler's copy of a write-rare pool).
[[nodiscard]] bool CopyToPoolFile(const void* src, size_t n, PoolFile* f, size_t offset);

// Maps [addr, addr+size) read-only MAP_SHARED|MAP_FIXED on `f` at `offset`.
[[nodiscard]] bool MapPoolFileReadOnly(void* addr, size_t size, const PoolFile& f, size_t offset);

// pwrite(2) of all `n` bytes at `offset` of `f`: a write into the file's pages that no mapping
// takes part in. Not atomic for concurrent readers of the mapped pages. One syscall for
// n <= 2 GiB.
[[nodiscard]] bool PoolFileWrite(const PoolFile& f, size_t offset, const void* src, size_t n);

// One atomic 8-byte store (release) of `value` at `offset` (8-aligned) of `f`, through a
// read-write MAP_SHARED alias of that one page at an address the kernel picks, unmapped at
// once: concurrent readers of the page's other mappings see the old or the new value, never
// a mix. Costs an mmap, a page fault and an munmap (with its TLB shootdown).
[[nodiscard]] bool AliasStore64(const PoolFile& f, size_t offset, uint64_t value);

// Closes the descriptor (mappings keep the file alive) and resets `*f`.
void ClosePoolFile(PoolFile* f);
// Descriptors to close together (lockdown closes one memfd per pool): Add() keeps up to
// kMax, Flush() (and the destructor) closes them, sorted, one close_range(2) per run of
// consecutive numbers. Pool memfds sit at consecutive numbers from kPoolFileMinFd, so
// lockdown of 1000 pools costs a few syscalls to close instead of 1000. Only descriptors the
// caller owns go in: a run closes exactly its own numbers. Does not allocate.
class FdBatch {
 public:
  static constexpr int kMax = 256;
  FdBatch() = default;
  FdBatch(const FdBatch&) = delete;
  FdBatch& operator=(const FdBatch&) = delete;
  ~FdBatch() { Flush(); }
  void Add(int fd) {
    if (n_ == kMax) Flush();
    fds_[n_++] = fd;
  }
  void Flush();

 private:
  int fds_[kMax];
  int n_ = 0;
};
// ClosePoolFile, the close deferred to `batch` (nullptr: closed now).
void ClosePoolFile(PoolFile* f, FdBatch* batch);

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
[[nodiscard]] bool RemapSharedReadOnly(void* addr, size_t size, size_t used, const char* name,
                                       CopyPages pages = CopyPages::kTouched);

[[nodiscard]] bool ProtectReadWrite(void* addr, size_t size);
// Gives the memory of the writable range [addr, addr+size) back to the system, keeping the
// mapping: a `shared` range (MAP_SHARED on a memfd) frees the file's pages (MADV_REMOVE),
// any other range drops its private pages (MADV_DONTNEED). The next touch reads zero, or
// for a private file mapping the file's bytes. Contents are lost.
[[nodiscard]] bool DiscardPages(void* addr, size_t size, bool shared);

// Maps one inaccessible (PROT_NONE) page at `addr`, over reserved space, as a MAP_SHARED
// memfd named `name`: a landmark that /proc/PID/maps shows on every kernel, so tools can find
// pmalloc's address ranges without ptrace (pmalloc-inspect). Costs no memory (the page is
// never touched) and no descriptor after the call. On failure (errno from memfd_create,
// ftruncate or mmap) the page stays reserved as it was.
[[nodiscard]] bool MapLandmark(void* addr, const char* name);

// Moves the pages of the mapping [from, from+size) to `to`, replacing whatever was mapped
// there in one step (mremap MREMAP_FIXED): readers of `to` see the old pages or the new,
// never a hole. The pages keep their protection; `from` becomes unmapped.
[[nodiscard]] bool MoveOver(void* from, void* to, size_t size);

// mseal(2). errno ENOSYS when the kernel lacks it.
[[nodiscard]] bool Seal(void* addr, size_t size);

// Drops the pages of a read-write range so they read back as zero: MADV_REMOVE for a shared
// area (frees the memfd's pages), MADV_DONTNEED for anonymous memory. Not for an area that
// fork privatised (a private file mapping would read the file's bytes back): EACCES.
[[nodiscard]] bool Discard(void* addr, size_t size);

}  // namespace pmalloc::internal::platform

#endif  // PMALLOC_CORE_PLATFORM_H_
