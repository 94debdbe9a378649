#include "core/platform.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

namespace pmalloc::internal::platform {
namespace {

#ifndef __NR_mseal
constexpr long kMsealSyscall = 462;  // x86_64; Debian 12's headers predate it
#else
constexpr long kMsealSyscall = __NR_mseal;
#endif

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
  void* raw = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + align - 1) & ~(align - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + total;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  return reinterpret_cast<void*>(aligned);
}

void* AllocatePages(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

bool FreePages(void* addr, size_t size) { return munmap(addr, size) == 0; }

bool MapArea(void* addr, size_t size, const char* name) {
  const int fd = static_cast<int>(syscall(SYS_memfd_create, name, MFD_CLOEXEC));
  if (fd < 0) return false;
  bool ok = ftruncate(fd, static_cast<off_t>(size)) == 0;
  if (ok) {
    void* p = mmap(addr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
    ok = p != MAP_FAILED;
  }
  const int saved = errno;
  close(fd);  // the mapping keeps the file alive
  errno = saved;
  return ok;
}

bool Unmap(void* addr, size_t size) {
  void* p = mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                 -1, 0);
  return p != MAP_FAILED;
}

bool ProtectReadOnly(void* addr, size_t size) { return mprotect(addr, size, PROT_READ) == 0; }

bool ProtectReadWrite(void* addr, size_t size) {
  return mprotect(addr, size, PROT_READ | PROT_WRITE) == 0;
}

bool Seal(void* addr, size_t size) { return syscall(kMsealSyscall, addr, size, 0UL) == 0; }

bool Discard(void* addr, size_t size) { return madvise(addr, size, MADV_DONTNEED) == 0; }

}  // namespace pmalloc::internal::platform
