#include "core/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

namespace pmalloc::internal::platform {
namespace {

constexpr size_t kHugePageSize = size_t{2} << 20;
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#endif
#ifndef PR_SET_VMA_ANON_NAME
#define PR_SET_VMA_ANON_NAME 0
#endif

#ifndef __NR_mseal
constexpr long kMsealSyscall = 462;  // x86_64; Debian 12's headers predate it
#else
constexpr long kMsealSyscall = __NR_mseal;
#endif

// /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
constexpr uint64_t kPagemapPresent = uint64_t{1} << 63;
constexpr uint64_t kPagemapSwapped = uint64_t{1} << 62;

// pwrite(2) of all `len` bytes (it may write less than asked, or be interrupted). The raw
// syscall, not the libc wrapper that sanitizers intercept: pmalloc copies whole pages,
// including bytes the program has poisoned for ASan (Abseil's containers poison empty
// slots), which the interceptor would report as a use-after-poison read.
bool WriteAll(int fd, const char* src, size_t len, off_t off) {
  while (len > 0) {
    const ssize_t n = syscall(SYS_pwrite64, fd, src, len, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    src += n;
    len -= static_cast<size_t>(n);
    off += n;
  }
  return true;
}

// Replaces the mapping at [addr, addr+size) by `fd` at `offset` with the same contents (a
// remap that keeps every byte: onto a memfd copy, read-only, or private at fork). The raw
// syscall, not the libc wrapper: ThreadSanitizer's mmap interceptor treats a new mapping as
// a write to every byte of it, a race with each concurrent reader of data that did not
// change (pmalloc_ro's configuration, a pool's blocks).
bool ReplaceMapping(void* addr, size_t size, int prot, int flags, int fd, size_t offset) {
  const long p =
      syscall(SYS_mmap, addr, size, prot, flags | MAP_FIXED, fd, static_cast<off_t>(offset));
  return p != -1;
}

// Copies [addr, addr+used) into `fd` at the same offsets, skipping the pages the process
// never touched. In a private memfd mapping every byte ever stored lives in an anonymous
// copy-on-write page (the file itself is never written), so a page that is neither present
// nor swapped reads as zero: skipping it keeps sparse areas sparse instead of materialising
// them twice (old file on read, new file on write). Without pagemap (no /proc, a failed
// read) the pages are copied anyway: correct, only more memory.
// `file_off` is the file offset of `addr`.
bool CopyTouchedPages(int fd, const char* addr, size_t used, off_t file_off = 0) {
  const size_t page = PageSize();
  const int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) return WriteAll(fd, addr, used, file_off);
  constexpr size_t kBatch = 512;  // entries per read: 4 KiB of stack, 2 MiB of area
  uint64_t entries[kBatch];
  size_t run = 0;  // bytes of touched pages pending before `off + i * page`
  bool ok = true;
  for (size_t off = 0; ok && off < used; off += kBatch * page) {
    const size_t n = std::min(kBatch, (used - off) / page);
    const off_t pos =
        static_cast<off_t>((reinterpret_cast<uintptr_t>(addr) + off) / page * sizeof(uint64_t));
    const bool known = pread(pagemap, entries, n * sizeof(uint64_t), pos) ==
                       static_cast<ssize_t>(n * sizeof(uint64_t));
    for (size_t i = 0; ok && i < n; ++i) {
      if (!known || (entries[i] & (kPagemapPresent | kPagemapSwapped)) != 0) {
        run += page;
      } else if (run != 0) {
        const size_t start = off + i * page - run;
        ok = WriteAll(fd, addr + start, run, file_off + static_cast<off_t>(start));
        run = 0;
      }
    }
  }
  if (ok && run != 0) {
    ok = WriteAll(fd, addr + used - run, run, file_off + static_cast<off_t>(used - run));
  }
  const int saved = errno;
  close(pagemap);
  errno = saved;
  return ok;
}

}  // namespace

size_t PageSize() {
  static std::atomic<size_t> cached{0};
  size_t page = cached.load(std::memory_order_relaxed);
  if (page == 0) {
    page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    cached.store(page, std::memory_order_relaxed);
  }
  return page;
}

void* Reserve(size_t size, size_t align) {
  // Over-reserve, then trim both ends to get the alignment.
  const size_t total = size + align;
  void* raw = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + align - 1) & ~(align - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + total;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  return reinterpret_cast<void*>(aligned);
}

void* AllocatePages(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

bool FreePages(void* addr, size_t size) { return munmap(addr, size) == 0; }

bool MapArea(void* addr, size_t size, const char* name) {
  void* p =
      mmap(addr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) return false;
  // Both hints are best effort: EINVAL without CONFIG_ANON_VMA_NAME (the area is named when
  // protect moves it onto a memfd) and without THP. Areas smaller than a huge page never
  // ask for one, so small pools do not pay 2 MiB each.
  (void)prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, reinterpret_cast<uintptr_t>(addr), size,
              reinterpret_cast<uintptr_t>(name));
  if (size >= kHugePageSize) (void)madvise(addr, size, MADV_HUGEPAGE);
  return true;
}

bool RemapSharedReadOnly(void* addr, size_t size, size_t used, const char* name, CopyPages pages) {
  const int fd = static_cast<int>(syscall(SYS_memfd_create, name, MFD_CLOEXEC));
  if (fd < 0) return false;
  const size_t page = PageSize();
  used = std::min(size, (used + page - 1) & ~(page - 1));
  bool ok = ftruncate(fd, static_cast<off_t>(size)) == 0 &&
            (pages == CopyPages::kAll ? WriteAll(fd, static_cast<const char*>(addr), used, 0)
                                      : CopyTouchedPages(fd, static_cast<const char*>(addr), used));
  if (ok) {
    // One VMA replaced by another under the kernel's mmap lock: a concurrent reader either
    // still reads the old page or faults and waits for the new mapping; it never sees a
    // hole. The old mapping (and its memfd, whose last reference it held) is released.
    ok = ReplaceMapping(addr, size, PROT_READ, MAP_SHARED, fd, 0);
  }
  const int saved = errno;
  close(fd);  // the mapping keeps the file alive
  errno = saved;
  return ok;
}

bool OpenPoolFile(const char* name, PoolFile* out) {
  int fd = static_cast<int>(syscall(SYS_memfd_create, name, MFD_CLOEXEC));
  if (fd < 0) return false;
  // EINVAL when the limit is at most kPoolFileMinFd, EMFILE when nothing is free above it:
  // then the low descriptor has to do.
  const int high = fcntl(fd, F_DUPFD_CLOEXEC, kPoolFileMinFd);
  if (high >= 0) {
    close(fd);
    fd = high;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return false;
  }
  out->fd = fd;
  out->dev = st.st_dev;
  out->ino = st.st_ino;
  out->size = 0;
  return true;
}

bool PoolFileValid(const PoolFile& f) {
  struct stat st;
  if (f.fd < 0 || fstat(f.fd, &st) != 0) return false;
  return st.st_dev == f.dev && st.st_ino == f.ino;
}

bool MapSharedArea(void* addr, size_t size, PoolFile* f, size_t* offset) {
  if (!PoolFileValid(*f)) {
    errno = EBADF;
    return false;
  }
  const size_t off = f->size;
  if (ftruncate(f->fd, static_cast<off_t>(off + size)) != 0) return false;
  f->size = off + size;
  void* p = mmap(addr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, f->fd,
                 static_cast<off_t>(off));
  if (p == MAP_FAILED) return false;
  *offset = off;
  return true;
}

bool PrivatizeArea(void* addr, size_t size, const PoolFile& f, size_t offset) {
  return ReplaceMapping(addr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f.fd, offset);
}

void FdBatch::Flush() {
  const int saved = errno;
  std::sort(fds_, fds_ + n_);
  for (int i = 0; i < n_;) {
    int j = i;
    while (j + 1 < n_ && fds_[j + 1] == fds_[j] + 1) ++j;
    if (j == i || syscall(SYS_close_range, static_cast<unsigned>(fds_[i]),
                          static_cast<unsigned>(fds_[j]), 0U) != 0) {
      for (int k = i; k <= j; ++k) close(fds_[k]);  // one, or no close_range (before 5.9)
    }
    i = j + 1;
  }
  n_ = 0;
  errno = saved;
}

void ClosePoolFile(PoolFile* f, FdBatch* batch) {
  if (batch == nullptr || f->fd < 0) return ClosePoolFile(f);
  batch->Add(f->fd);
  *f = PoolFile{};
}

void ClosePoolFile(PoolFile* f) {
  if (f->fd >= 0) {
    const int saved = errno;
    close(f->fd);
    errno = saved;
  }
  *f = PoolFile{};
}

bool MoveToPoolFile(void* addr, size_t size, size_t used, CopyPages pages, PoolFile* f,
                    size_t* offset) {
  if (!PoolFileValid(*f)) {
    errno = EBADF;
    return false;
  }
  const size_t page = PageSize();
  used = std::min(size, (used + page - 1) & ~(page - 1));
  const size_t off = f->size;
  if (ftruncate(f->fd, static_cast<off_t>(off + size)) != 0) return false;
  f->size = off + size;
  const char* src = static_cast<const char*>(addr);
  const bool copied = pages == CopyPages::kAll
                          ? WriteAll(f->fd, src, used, static_cast<off_t>(off))
                          : CopyTouchedPages(f->fd, src, used, static_cast<off_t>(off));
  // As in RemapSharedReadOnly: one VMA replaces another, no hole, never writable.
  if (!copied || !ReplaceMapping(addr, size, PROT_READ, MAP_SHARED, f->fd, off)) {
    return false;
  }
  *offset = off;
  return true;
}

bool CopyToPoolFile(const void* src, size_t n, PoolFile* f, size_t offset) {
  if (offset + n > f->size) {
    if (ftruncate(f->fd, static_cast<off_t>(offset + n)) != 0) return false;
    f->size = offset + n;
  }
  return WriteAll(f->fd, static_cast<const char*>(src), n, static_cast<off_t>(offset));
}

bool MapPoolFileReadOnly(void* addr, size_t size, const PoolFile& f, size_t offset) {
  return ReplaceMapping(addr, size, PROT_READ, MAP_SHARED, f.fd, offset);
}

bool PoolFileWrite(const PoolFile& f, size_t offset, const void* src, size_t n) {
  return WriteAll(f.fd, static_cast<const char*>(src), n, static_cast<off_t>(offset));
}

bool AliasStore64(const PoolFile& f, size_t offset, uint64_t value) {
  const size_t page = PageSize();
  const size_t page_off = offset & ~(page - 1);
  void* alias =
      mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd, static_cast<off_t>(page_off));
  if (alias == MAP_FAILED) return false;
  __atomic_store_n(reinterpret_cast<uint64_t*>(static_cast<char*>(alias) + (offset - page_off)),
                   value, __ATOMIC_RELEASE);
  const int saved = errno;
  (void)munmap(alias, page);
  errno = saved;
  return true;
}

bool MapLandmark(void* addr, const char* name) {
  const int fd = static_cast<int>(syscall(SYS_memfd_create, name, MFD_CLOEXEC));
  if (fd < 0) return false;
  bool ok = ftruncate(fd, static_cast<off_t>(PageSize())) == 0;
  if (ok) ok = mmap(addr, PageSize(), PROT_NONE, MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED;
  const int saved = errno;
  close(fd);
  errno = saved;
  return ok;
}

bool Unmap(void* addr, size_t size) {
  void* p =
      mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  return p != MAP_FAILED;
}

bool ProtectReadOnly(void* addr, size_t size) { return mprotect(addr, size, PROT_READ) == 0; }

bool ProtectReadWrite(void* addr, size_t size) {
  return mprotect(addr, size, PROT_READ | PROT_WRITE) == 0;
}

bool DiscardPages(void* addr, size_t size, bool shared) {
  return madvise(addr, size, shared ? MADV_REMOVE : MADV_DONTNEED) == 0;
}

bool MoveOver(void* from, void* to, size_t size) {
  return mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to) != MAP_FAILED;
}

bool Seal(void* addr, size_t size) { return syscall(kMsealSyscall, addr, size, 0UL) == 0; }

bool Discard(void* addr, size_t size) {
  if (madvise(addr, size, MADV_REMOVE) == 0) return true;
  return errno == EINVAL && madvise(addr, size, MADV_DONTNEED) == 0;  // EINVAL: anonymous
}

}  // namespace pmalloc::internal::platform
