// The calls a server makes when it starts serving, interposed for PMALLOC_CONF=lockdown:call:
// and lockdown:serve (core/triggers.h): listen, accept, accept4, epoll_wait, epoll_pwait,
// epoll_pwait2, poll, ppoll (and their fortified forms), select, pselect, sigwait,
// sigwaitinfo, sigtimedwait. Each checks one flag before calling glibc's function (after the
// trigger fired, or without one: a relaxed load and a not-taken branch) and then calls it
// unchanged, so errno, cancellation points and signal behaviour stay glibc's. The ones that
// write user buffers (accept's address, the epoll events, poll's revents, select's sets,
// sigwaitinfo's siginfo) also get the EFAULT check of preload/kernel_writes.cc.
// Cost measured in tests/perf/serving_calls_bench.cc (docs/triggers.md).
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>

#include "absl/base/attributes.h"
#include "core/fatal.h"
#include "core/triggers.h"
#include "pmalloc/pmalloc.h"
#include "preload/interpose.h"

namespace pmalloc::preload {

void* ResolveNext(std::atomic<void*>* slot, const char* name, bool required) {
  void* p = dlsym(RTLD_NEXT, name);
  // A program linked with libc before libpmalloc finds glibc's symbol first (and never
  // calls ours); pmalloc's own calls still need it.
  if (p == nullptr) {
    if (void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD)) p = dlsym(libc, name);
  }
  if (p == nullptr) {
    if (!required) return nullptr;
    internal::FatalNoLibcFunction(name);
  }
  slot->store(p, std::memory_order_release);
  return p;
}

}  // namespace pmalloc::preload

extern "C" int __poll_chk(struct pollfd* fds, nfds_t nfds, int timeout, size_t fdslen);
extern "C" int __ppoll_chk(struct pollfd* fds, nfds_t nfds, const struct timespec* timeout,
                           const sigset_t* ss, size_t fdslen);

namespace {

using pmalloc::internal::OnServingCall;
using pmalloc::internal::ServingTriggerArmed;
using pmalloc::internal::UserBuffer;
using pmalloc::preload::AfterKernelWrite;
using pmalloc::preload::Caller;

// Every function this file interposes, each named once: PMALLOC_NEXT_SLOTS declares their
// slots and a constructor that resolves them at load time.
// clang-format off
#define PMALLOC_SERVING_CALLS(X)                                                       \
  X(listen) X(accept) X(accept4) X(epoll_wait) X(epoll_pwait) X(epoll_pwait2) X(poll)  \
  X(__poll_chk) X(ppoll) X(__ppoll_chk) X(select) X(pselect) X(sigwait) X(sigwaitinfo) \
  X(sigtimedwait)
// clang-format on
PMALLOC_NEXT_SLOTS(PMALLOC_SERVING_CALLS, ResolveServingCalls)

// The lockdown trigger's one branch.
#define PMALLOC_SERVING_GATE(call) \
  if (__builtin_expect(ServingTriggerArmed(), 0)) OnServingCall(pmalloc::internal::call)

size_t AddrBuffers(UserBuffer* b, struct sockaddr* addr, socklen_t* len) {
  if (addr == nullptr || len == nullptr) return 0;
  b[0] = {len, sizeof(*len)};
  b[1] = {addr, *len};
  return 2;
}

size_t FdSetBuffers(UserBuffer* b, int nfds, fd_set* r, fd_set* w, fd_set* e) {
  const size_t bytes = nfds <= 0 ? 0 : (static_cast<size_t>(nfds) + 7) / 8;
  b[0] = {r, bytes};
  b[1] = {w, bytes};
  b[2] = {e, bytes};
  return 3;
}

size_t Events(int maxevents) {
  return maxevents <= 0 ? 0 : static_cast<size_t>(maxevents) * sizeof(struct epoll_event);
}

}  // namespace

extern "C" {

PMALLOC_EXPORT int listen(int fd, int backlog) noexcept {
  PMALLOC_SERVING_GATE(kCallListen);
  return PMALLOC_NEXT(listen, decltype(&listen))(fd, backlog);
}

PMALLOC_EXPORT int accept(int fd, struct sockaddr* addr, socklen_t* len) {
  PMALLOC_SERVING_GATE(kCallAccept);
  auto real = PMALLOC_NEXT(accept, decltype(&accept));
  return AfterKernelWrite(
      real(fd, addr, len), "accept", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) { return AddrBuffers(b, addr, len); },
      [&] { return real(fd, addr, len); });
}

PMALLOC_EXPORT int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  PMALLOC_SERVING_GATE(kCallAccept4);
  auto real = PMALLOC_NEXT(accept4, decltype(&accept4));
  return AfterKernelWrite(
      real(fd, addr, len, flags), "accept4", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) { return AddrBuffers(b, addr, len); },
      [&] { return real(fd, addr, len, flags); });
}

PMALLOC_EXPORT int epoll_wait(int epfd, struct epoll_event* events, int maxevents, int timeout) {
  PMALLOC_SERVING_GATE(kCallEpollWait);
  auto real = PMALLOC_NEXT(epoll_wait, decltype(&epoll_wait));
  return AfterKernelWrite(
      real(epfd, events, maxevents, timeout), "epoll_wait", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) {
        b[0] = {events, Events(maxevents)};
        return size_t{1};
      },
      [&] { return real(epfd, events, maxevents, timeout); });
}

PMALLOC_EXPORT int epoll_pwait(int epfd, struct epoll_event* events, int maxevents, int timeout,
                               const sigset_t* ss) {
  PMALLOC_SERVING_GATE(kCallEpollPwait);
  auto real = PMALLOC_NEXT(epoll_pwait, decltype(&epoll_pwait));
  return AfterKernelWrite(
      real(epfd, events, maxevents, timeout, ss), "epoll_pwait",
      Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) {
        b[0] = {events, Events(maxevents)};
        return size_t{1};
      },
      [&] { return real(epfd, events, maxevents, timeout, ss); });
}

PMALLOC_EXPORT int epoll_pwait2(int epfd, struct epoll_event* events, int maxevents,
                                const struct timespec* timeout, const sigset_t* ss) {
  PMALLOC_SERVING_GATE(kCallEpollPwait2);
  auto real = PMALLOC_NEXT(epoll_pwait2, decltype(&epoll_pwait2));
  return AfterKernelWrite(
      real(epfd, events, maxevents, timeout, ss), "epoll_pwait2",
      Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) {
        b[0] = {events, Events(maxevents)};
        return size_t{1};
      },
      [&] { return real(epfd, events, maxevents, timeout, ss); });
}

PMALLOC_EXPORT int poll(struct pollfd* fds, nfds_t nfds, int timeout) {
  PMALLOC_SERVING_GATE(kCallPoll);
  auto real = PMALLOC_NEXT(poll, decltype(&poll));
  return AfterKernelWrite(
      real(fds, nfds, timeout), "poll", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) {
        b[0] = {fds, nfds * sizeof(*fds)};
        return size_t{1};
      },
      [&] { return real(fds, nfds, timeout); });
}

PMALLOC_EXPORT int __poll_chk(struct pollfd* fds, nfds_t nfds, int timeout, size_t fdslen) {
  PMALLOC_SERVING_GATE(kCallPoll);
  auto real = PMALLOC_NEXT(__poll_chk, decltype(&__poll_chk));
  return AfterKernelWrite(
      real(fds, nfds, timeout, fdslen), "poll", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) {
        b[0] = {fds, nfds * sizeof(*fds)};
        return size_t{1};
      },
      [&] { return real(fds, nfds, timeout, fdslen); });
}

PMALLOC_EXPORT int ppoll(struct pollfd* fds, nfds_t nfds, const struct timespec* timeout,
                         const sigset_t* ss) {
  PMALLOC_SERVING_GATE(kCallPpoll);
  auto real = PMALLOC_NEXT(ppoll, decltype(&ppoll));
  return AfterKernelWrite(
      real(fds, nfds, timeout, ss), "ppoll", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) {
        b[0] = {fds, nfds * sizeof(*fds)};
        return size_t{1};
      },
      [&] { return real(fds, nfds, timeout, ss); });
}

PMALLOC_EXPORT int __ppoll_chk(struct pollfd* fds, nfds_t nfds, const struct timespec* timeout,
                               const sigset_t* ss, size_t fdslen) {
  PMALLOC_SERVING_GATE(kCallPpoll);
  auto real = PMALLOC_NEXT(__ppoll_chk, decltype(&__ppoll_chk));
  return AfterKernelWrite(
      real(fds, nfds, timeout, ss, fdslen), "ppoll", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) {
        b[0] = {fds, nfds * sizeof(*fds)};
        return size_t{1};
      },
      [&] { return real(fds, nfds, timeout, ss, fdslen); });
}

PMALLOC_EXPORT int select(int nfds, fd_set* r, fd_set* w, fd_set* e, struct timeval* timeout) {
  PMALLOC_SERVING_GATE(kCallSelect);
  auto real = PMALLOC_NEXT(select, decltype(&select));
  return AfterKernelWrite(
      real(nfds, r, w, e, timeout), "select", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) { return FdSetBuffers(b, nfds, r, w, e); },
      [&] { return real(nfds, r, w, e, timeout); });
}

PMALLOC_EXPORT int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e,
                           const struct timespec* timeout, const sigset_t* ss) {
  PMALLOC_SERVING_GATE(kCallPselect);
  auto real = PMALLOC_NEXT(pselect, decltype(&pselect));
  return AfterKernelWrite(
      real(nfds, r, w, e, timeout, ss), "pselect", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) { return FdSetBuffers(b, nfds, r, w, e); },
      [&] { return real(nfds, r, w, e, timeout, ss); });
}

// glibc stores *sig itself, after the system call: a locked `sig` faults like any store.
PMALLOC_EXPORT int sigwait(const sigset_t* set, int* sig) {
  PMALLOC_SERVING_GATE(kCallSigwait);
  return PMALLOC_NEXT(sigwait, decltype(&sigwait))(set, sig);
}

PMALLOC_EXPORT int sigwaitinfo(const sigset_t* set, siginfo_t* info) {
  PMALLOC_SERVING_GATE(kCallSigwaitinfo);
  auto real = PMALLOC_NEXT(sigwaitinfo, decltype(&sigwaitinfo));
  return AfterKernelWrite(
      real(set, info), "sigwaitinfo", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) {
        b[0] = {info, info == nullptr ? 0 : sizeof(*info)};
        return size_t{1};
      },
      [&] { return real(set, info); });
}

PMALLOC_EXPORT int sigtimedwait(const sigset_t* set, siginfo_t* info,
                                const struct timespec* timeout) {
  PMALLOC_SERVING_GATE(kCallSigtimedwait);
  auto real = PMALLOC_NEXT(sigtimedwait, decltype(&sigtimedwait));
  return AfterKernelWrite(
      real(set, info, timeout), "sigtimedwait", Caller(__builtin_return_address(0)),
      [&](UserBuffer* b) {
        b[0] = {info, info == nullptr ? 0 : sizeof(*info)};
        return size_t{1};
      },
      [&] { return real(set, info, timeout); });
}

}  // extern "C"
