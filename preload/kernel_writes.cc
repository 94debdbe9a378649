// System calls that write user buffers, interposed so that a write the kernel cannot make
// because the buffer is in a locked pool (it fails with EFAULT and raises no signal) is not
// silently lost: core/learn.h's OnKernelWriteFault reports it and kills the process like a
// write fault (enforcing), or records it and retries the call once with the pages unlocked
// (learn mode). The success path adds one well-predicted branch on the result. The
// serving calls that write buffers (epoll_wait, poll, accept, ...) are in serving_calls.cc.
// Not covered: calls glibc makes internally (stdio's read of a FILE buffer uses glibc's
// internal __read, not this symbol) and system calls made with syscall(2).
#include <dirent.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "absl/base/attributes.h"
#include "pmalloc/pmalloc.h"
#include "preload/interpose.h"

extern "C" ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen);
extern "C" ssize_t __pread_chk(int fd, void* buf, size_t n, off_t off, size_t buflen);
extern "C" ssize_t __pread64_chk(int fd, void* buf, size_t n, off64_t off, size_t buflen);
extern "C" ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags);
extern "C" ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags,
                                  struct sockaddr* addr, socklen_t* addrlen);

namespace {

using pmalloc::internal::UserBuffer;
using pmalloc::preload::AfterKernelWrite;
using pmalloc::preload::Caller;
using pmalloc::preload::kMaxBuffers;

// Every function this file interposes, each named once: PMALLOC_NEXT_SLOTS declares their
// slots and a constructor that resolves them at load time.
// clang-format off
#define PMALLOC_KERNEL_WRITE_CALLS(X)                                                \
  X(read) X(__read_chk) X(pread) X(pread64) X(__pread_chk) X(__pread64_chk) X(readv) \
  X(preadv) X(preadv64) X(preadv2) X(preadv64v2) X(recv) X(__recv_chk) X(recvfrom)   \
  X(__recvfrom_chk) X(recvmsg) X(getdents64)
// clang-format on
PMALLOC_NEXT_SLOTS(PMALLOC_KERNEL_WRITE_CALLS, ResolveKernelWrites)

size_t One(UserBuffer* b, const void* p, size_t n) {
  b[0] = {p, n};
  return 1;
}

size_t Iov(UserBuffer* b, const struct iovec* iov, int n) {
  size_t k = 0;
  for (int i = 0; iov != nullptr && i < n && k < kMaxBuffers; ++i) {
    b[k++] = {iov[i].iov_base, iov[i].iov_len};
  }
  return k;
}

size_t From(UserBuffer* b, void* buf, size_t n, struct sockaddr* addr, socklen_t* len) {
  b[0] = {buf, n};
  if (addr == nullptr || len == nullptr) return 1;
  b[1] = {len, sizeof(*len)};
  b[2] = {addr, *len};
  return 3;
}

// The msghdr itself (the kernel writes msg_namelen, msg_controllen, msg_flags), its name,
// control and data buffers.
size_t Msg(UserBuffer* b, struct msghdr* m) {
  if (m == nullptr) return 0;
  b[0] = {m, sizeof(*m)};
  b[1] = {m->msg_name, m->msg_namelen};
  b[2] = {m->msg_control, m->msg_controllen};
  return 3 + Iov(b + 3, m->msg_iov, static_cast<int>(m->msg_iovlen));
}

}  // namespace

// One wrapper: `call` is the argument list, `buffers` fills the UserBuffer array `b`.
#define PMALLOC_KERNEL_WRITE(sym, args, buffers)            \
  auto real = PMALLOC_NEXT(sym, decltype(&(sym)));          \
  return AfterKernelWrite(                                  \
      real args, #sym, Caller(__builtin_return_address(0)), \
      [&](UserBuffer* b) { return buffers; }, [&] { return real args; })

extern "C" {

PMALLOC_EXPORT ssize_t read(int fd, void* buf, size_t n) {
  PMALLOC_KERNEL_WRITE(read, (fd, buf, n), One(b, buf, n));
}

PMALLOC_EXPORT ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  PMALLOC_KERNEL_WRITE(__read_chk, (fd, buf, n, buflen), One(b, buf, n));
}

PMALLOC_EXPORT ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  PMALLOC_KERNEL_WRITE(pread, (fd, buf, n, off), One(b, buf, n));
}

PMALLOC_EXPORT ssize_t pread64(int fd, void* buf, size_t n, off64_t off) {
  PMALLOC_KERNEL_WRITE(pread64, (fd, buf, n, off), One(b, buf, n));
}

PMALLOC_EXPORT ssize_t __pread_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  PMALLOC_KERNEL_WRITE(__pread_chk, (fd, buf, n, off, buflen), One(b, buf, n));
}

PMALLOC_EXPORT ssize_t __pread64_chk(int fd, void* buf, size_t n, off64_t off, size_t buflen) {
  PMALLOC_KERNEL_WRITE(__pread64_chk, (fd, buf, n, off, buflen), One(b, buf, n));
}

PMALLOC_EXPORT ssize_t readv(int fd, const struct iovec* iov, int n) {
  PMALLOC_KERNEL_WRITE(readv, (fd, iov, n), Iov(b, iov, n));
}

PMALLOC_EXPORT ssize_t preadv(int fd, const struct iovec* iov, int n, off_t off) {
  PMALLOC_KERNEL_WRITE(preadv, (fd, iov, n, off), Iov(b, iov, n));
}

PMALLOC_EXPORT ssize_t preadv64(int fd, const struct iovec* iov, int n, off64_t off) {
  PMALLOC_KERNEL_WRITE(preadv64, (fd, iov, n, off), Iov(b, iov, n));
}

PMALLOC_EXPORT ssize_t preadv2(int fd, const struct iovec* iov, int n, off_t off, int flags) {
  PMALLOC_KERNEL_WRITE(preadv2, (fd, iov, n, off, flags), Iov(b, iov, n));
}

PMALLOC_EXPORT ssize_t preadv64v2(int fd, const struct iovec* iov, int n, off64_t off, int flags) {
  PMALLOC_KERNEL_WRITE(preadv64v2, (fd, iov, n, off, flags), Iov(b, iov, n));
}

PMALLOC_EXPORT ssize_t recv(int fd, void* buf, size_t n, int flags) {
  PMALLOC_KERNEL_WRITE(recv, (fd, buf, n, flags), One(b, buf, n));
}

PMALLOC_EXPORT ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  PMALLOC_KERNEL_WRITE(__recv_chk, (fd, buf, n, buflen, flags), One(b, buf, n));
}

PMALLOC_EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, struct sockaddr* addr,
                                socklen_t* len) {
  PMALLOC_KERNEL_WRITE(recvfrom, (fd, buf, n, flags, addr, len), From(b, buf, n, addr, len));
}

PMALLOC_EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags,
                                      struct sockaddr* addr, socklen_t* len) {
  PMALLOC_KERNEL_WRITE(__recvfrom_chk, (fd, buf, n, buflen, flags, addr, len),
                       From(b, buf, n, addr, len));
}

PMALLOC_EXPORT ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  PMALLOC_KERNEL_WRITE(recvmsg, (fd, msg, flags), Msg(b, msg));
}

PMALLOC_EXPORT ssize_t getdents64(int fd, void* buf, size_t n) noexcept {
  PMALLOC_KERNEL_WRITE(getdents64, (fd, buf, n), One(b, buf, n));
}

}  // extern "C"
