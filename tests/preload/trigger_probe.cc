// Lockdown trigger probe (tests/preload/triggers_test.cc runs it with PMALLOC_CONF set):
// linked with -lpmalloc, so the face's interposers of the serving calls are in front of
// glibc's. Each mode prints facts and exits 0 when they hold; a locked block is observed by
// a forked child whose write to it must die by SIGSEGV.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "pmalloc/pmalloc.h"

namespace {

int failures = 0;

void Check(bool ok, const char* what) {
  printf("%s %s\n", ok ? "ok" : "FAILED", what);
  fflush(stdout);
  if (!ok) ++failures;
}

char* Block() {
  char* p = static_cast<char*>(pmalloc(pmalloc_default_pool(), 64));
  if (p == nullptr) abort();
  return p;
}

// True when a write to `p` kills a forked child by SIGSEGV (the block is locked).
bool WriteFaults(char* p) {
  fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
    *reinterpret_cast<volatile char*>(p) = 1;
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

bool Locked(char* p) {
  const bool faults = WriteFaults(p);
  if (faults != (pmalloc_is_protected(p) == 1)) {
    printf("FAILED pmalloc_is_protected disagrees with the fault\n");
    ++failures;
  }
  return faults;
}

// Makes the serving call `name` in a way that fails with (or leaves) a known errno, and
// checks that errno is glibc's. Returns false for an unknown name.
bool Call(const char* name) {
  struct epoll_event ev[1];
  struct timespec zero = {0, 0};
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  int r = 0;
  int want = 0;
  errno = EDOM;  // calls that succeed must leave it alone
  if (strcmp(name, "listen") == 0) {
    r = listen(-1, 1), want = EBADF;
  } else if (strcmp(name, "accept") == 0) {
    r = accept(-1, nullptr, nullptr), want = EBADF;
  } else if (strcmp(name, "accept4") == 0) {
    r = accept4(-1, nullptr, nullptr, 0), want = EBADF;
  } else if (strcmp(name, "epoll_wait") == 0) {
    r = epoll_wait(-1, ev, 1, 0), want = EBADF;
  } else if (strcmp(name, "epoll_pwait") == 0) {
    r = epoll_pwait(-1, ev, 1, 0, nullptr), want = EBADF;
  } else if (strcmp(name, "epoll_pwait2") == 0) {
    r = epoll_pwait2(-1, ev, 1, &zero, nullptr), want = EBADF;
  } else if (strcmp(name, "poll") == 0) {
    // An unmapped array: EFAULT that is not pmalloc's must reach the program unchanged.
    struct pollfd* volatile unmapped = reinterpret_cast<struct pollfd*>(8);
    r = poll(unmapped, 1, 0), want = EFAULT;
  } else if (strcmp(name, "ppoll") == 0) {
    struct pollfd fd = {-1, 0, 0};
    volatile nfds_t too_many = ~nfds_t{0} >> 1;
    r = ppoll(&fd, too_many, &zero, nullptr), want = EINVAL;
  } else if (strcmp(name, "select") == 0) {
    r = select(-1, nullptr, nullptr, nullptr, nullptr), want = EINVAL;
  } else if (strcmp(name, "pselect") == 0) {
    r = pselect(-1, nullptr, nullptr, nullptr, &zero, nullptr), want = EINVAL;
  } else if (strcmp(name, "sigwait") == 0) {
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
    raise(SIGUSR1);
    int sig = 0;
    errno = EDOM;
    r = sigwait(&usr1, &sig) == 0 && sig == SIGUSR1 ? -1 : 0, want = EDOM;
  } else if (strcmp(name, "sigwaitinfo") == 0) {
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
    raise(SIGUSR1);
    errno = EDOM;
    r = sigwaitinfo(&usr1, nullptr) == SIGUSR1 ? -1 : 0, want = EDOM;
  } else if (strcmp(name, "sigtimedwait") == 0) {
    r = sigtimedwait(&usr1, nullptr, &zero), want = EAGAIN;
  } else {
    return false;
  }
  const int got = errno;
  char what[96];
  snprintf(what, sizeof(what), "%s errno %d (want %d)", name, got, want);
  Check(r == -1 && got == want, what);
  return true;
}

constexpr const char* kAll[] = {
    "listen", "accept", "accept4", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll",
    "ppoll",  "select", "pselect", "sigwait",    "sigwaitinfo", "sigtimedwait"};

// call:NAME fires at NAME (after every other call did not) and only once.
int Fire(const char* name) {
  char* p = Block();
  for (const char* other : kAll) {
    if (strcmp(other, name) != 0) Call(other);
  }
  Check(!Locked(p), "not locked by the other calls");
  if (!Call(name)) return 2;
  Check(Locked(p), "locked by the named call");
  char* q = Block();  // a fresh area of the growable default pool
  Call(name);
  Check(!Locked(q), "the trigger fired once");
  return failures;
}

// call:A+B fires at whichever comes first.
int List() {
  char* p = Block();
  Call("poll");
  Check(!Locked(p), "a call not in the list does not fire");
  Call("accept4");
  Check(Locked(p), "the first listed call fired");
  return failures;
}

int Serve() {
  char* p = Block();
  std::thread([] {
    Call("epoll_wait");
    Call("poll");
    Call("accept");
  }).join();
  Check(!Locked(p), "serving calls of another thread do not fire");
  Call("listen");
  Check(!Locked(p), "listen does not fire lockdown:serve");
  Call("epoll_wait");
  Check(Locked(p), "the main thread's epoll_wait fired");
  return failures;
}

int Api() {
  char* p = Block();
  for (const char* name : kAll) Call(name);
  Check(!Locked(p), "no serving call fires lockdown:api");
  Check(pmalloc_lockdown(0) == 0 && Locked(p), "pmalloc_lockdown() locks");
  return failures;
}

// A serving call that arrives while another thread's lockdown runs returns only once the
// lockdown is complete: after it, every pool is protected. The lockdown is made slow (a
// 64 MiB area copied onto a memfd under protect:shared), the second call made during it.
int Race() {
  char* p = Block();
  const size_t big_size = size_t{64} << 20;
  char* big = static_cast<char*>(pmalloc(pmalloc_default_pool(), big_size));
  if (big == nullptr) return 3;
  memset(big, 1, big_size);
  std::atomic<bool> go{false};
  std::atomic<int> seen{-1};
  std::thread other([&] {
    while (!go.load()) {
    }
    usleep(1000);
    Call("poll");
    seen = pmalloc_is_protected(p) == 1 && pmalloc_is_protected(big) == 1;
  });
  go = true;
  Call("poll");
  other.join();
  Check(seen == 1, "a serving call made during the lockdown returns after it");
  return failures;
}

double Now() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

// lockdown:after:1s: not at start, then within 10 s; the process then exits normally.
int After() {
  const double start = Now();
  char* p = Block();
  Check(pmalloc_is_protected(p) == 0, "not locked at start");
  // The timer thread locks concurrently: poll the state, then observe the fault.
  while (pmalloc_is_protected(p) != 1 && Now() - start < 10) usleep(20 * 1000);
  Check(Locked(p), "locked within 10 s");
  return failures;
}

int AfterPthreadExit() {
  Block();
  std::thread([] { usleep(100 * 1000); }).detach();
  pthread_exit(nullptr);
}

volatile pid_t handled_on = 0;
void OnTerm(int) { handled_on = static_cast<pid_t>(syscall(SYS_gettid)); }

// A process-directed SIGTERM waits for a program thread that takes it: never pmalloc's.
int AfterSigterm() {
  Block();
  signal(SIGTERM, OnTerm);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  kill(getpid(), SIGTERM);
  usleep(200 * 1000);  // a thread that does not block SIGTERM would have taken it by now
  pthread_sigmask(SIG_UNBLOCK, &term, nullptr);
  Check(handled_on == getpid(), "SIGTERM handled on the main thread");
  return failures;
}

// Run in a child, returns its exit code.
template <typename Fn>
int InChild(Fn fn) {
  fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

// lockdown:call:listen reached before fork: the child inherits the lockdown.
int ForkInherit() {
  char* p = Block();
  Call("listen");
  Check(Locked(p), "parent locked");
  Check(InChild([p] { return Locked(p) ? 0 : 1; }) == 0, "child inherits the lockdown");
  return failures;
}

// First reached in a child: the child locks, the parent does not.
int ForkChildTrigger() {
  char* p = Block();
  Check(InChild([p] {
          Call("listen");
          return Locked(p) ? 0 : 1;
        }) == 0,
        "the child's listen locks the child");
  Check(!Locked(p), "the parent stays unlocked");
  Call("listen");
  Check(Locked(p), "the parent's own listen locks the parent");
  return failures;
}

// Enforcing mode: a system call that writes a locked buffer fails with EFAULT inside the
// kernel; pmalloc reports it and the process dies as for a write fault. Run in a child;
// prints how the child ended.
int KernelWrite(bool blocked_epoll) {
  char* p = Block();
  fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    if (blocked_epoll) {
      // A thread blocked in epoll_wait, its events array in a pool, when lockdown happens.
      auto* events = reinterpret_cast<struct epoll_event*>(p);
      const int ep = epoll_create1(0);
      const int ev = eventfd(0, 0);
      struct epoll_event want = {};
      want.events = EPOLLIN;
      if (epoll_ctl(ep, EPOLL_CTL_ADD, ev, &want) != 0) _exit(3);
      std::thread t([&] { epoll_wait(ep, events, 1, 10000); });
      usleep(100 * 1000);
      if (pmalloc_lockdown(0) != 0) _exit(4);
      const uint64_t one = 1;
      if (write(ev, &one, sizeof(one)) != sizeof(one)) _exit(5);
      t.join();
    } else {
      int fds[2];
      if (pipe(fds) != 0 || write(fds[1], "x", 1) != 1) _exit(3);
      if (pmalloc_lockdown(0) != 0) _exit(4);
      const ssize_t n = read(fds[0], p, 1);
      printf("read returned %zd errno %d\n", n, errno);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  printf("child %s %d\n", WIFSIGNALED(status) ? "killed by signal" : "exited with",
         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const char* mode = argv[1];
  int r = 2;
  if (strcmp(mode, "fire") == 0 && argc == 3) r = Fire(argv[2]);
  if (strcmp(mode, "list") == 0) r = List();
  if (strcmp(mode, "race") == 0) r = Race();
  if (strcmp(mode, "serve") == 0) r = Serve();
  if (strcmp(mode, "api") == 0) r = Api();
  if (strcmp(mode, "after") == 0) r = After();
  if (strcmp(mode, "after-pthread-exit") == 0) r = AfterPthreadExit();
  if (strcmp(mode, "after-sigterm") == 0) r = AfterSigterm();
  if (strcmp(mode, "fork-inherit") == 0) r = ForkInherit();
  if (strcmp(mode, "kernel-write-read") == 0) r = KernelWrite(false);
  if (strcmp(mode, "kernel-write-epoll") == 0) r = KernelWrite(true);
  if (strcmp(mode, "fork-child-trigger") == 0) r = ForkChildTrigger();
  printf("probe %s\n", r == 0 ? "done" : "failed");
  return r;
}
