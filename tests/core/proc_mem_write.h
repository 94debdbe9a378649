// Test helpers for writes through /proc/self/mem, which a protected pool refuses under
// protect:shared (the default) and lets through under protect:mprotect
// (docs/design.md §6). Header-only, for the tests in this folder.
#ifndef PMALLOC_TESTS_CORE_PROC_MEM_WRITE_H_
#define PMALLOC_TESTS_CORE_PROC_MEM_WRITE_H_

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace pmalloc_test {

// pwrite(2) through /proc/self/mem: what a debugger, or an attacker with a file-write
// primitive, would use. Returns pwrite's result (-2 when the file cannot be opened); errno
// is kept.
inline ssize_t ProcMemWrite(const void* addr, const void* src, size_t n) {
  const int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  if (fd < 0) return -2;
  const ssize_t r = pwrite(fd, src, n, static_cast<off_t>(reinterpret_cast<uintptr_t>(addr)));
  const int saved = errno;
  close(fd);
  errno = saved;
  return r;
}

// True when this process runs under PMALLOC_CONF=protect:mprotect.
inline bool MprotectMode() {
  const char* conf = getenv("PMALLOC_CONF");
  return conf != nullptr && strstr(conf, "protect:mprotect") != nullptr;
}

}  // namespace pmalloc_test

#endif  // PMALLOC_TESTS_CORE_PROC_MEM_WRITE_H_
