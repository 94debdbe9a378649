// GoogleTest assertions about locked memory, for users' tests (header-only; CMake target
// pmalloc::testing, docs/testing.md). Uses only pmalloc's public C API.
//
//   EXPECT_LOCKED(ptr, n) / ASSERT_LOCKED(ptr, n)
//       Every page of [ptr, ptr + n) (n == 0: the byte at ptr) is in a protected pool area
//       (pmalloc_is_protected) or in a registered lockdown range that lockdown protected
//       (pmalloc_is_protected_range). The failure names the first unlocked byte, its
//       offset, and the pool or range it is in (or that it is in neither).
//   EXPECT_WRITE_FAULTS(statement) / ASSERT_WRITE_FAULTS(statement)
//       Runs the statement in a forked child (stderr captured through a pipe, no core dump,
//       60 s alarm). Passes only if the child is killed by SIGSEGV and pmalloc's fault
//       report ("pmalloc: write to ..." or, off x86-64, "pmalloc: access to ...") is on
//       its stderr: a write to locked memory, not any crash. Otherwise the failure says
//       how the child ended and prints its stderr.
//   EXPECT_POOL_SEALED(pool) / ASSERT_POOL_SEALED(pool)
//       pmalloc_pool_stats reports is_sealed (every area mseal'ed).
//   EXPECT_THAT(x, pmalloc::IsLockedMemory())   (gmock)
//       x is a pointer T* (sizeof(T) bytes; void*: one byte), a std::pair<pointer, size_t>
//       (pointer and byte count), or anything with data() and size() (std::vector,
//       std::string, absl::Span: size() * sizeof(element) bytes). Same test as
//       EXPECT_LOCKED.
// All of them may be streamed into (EXPECT_LOCKED(p, n) << "config");.
#ifndef PMALLOC_TESTING_H_
#define PMALLOC_TESTING_H_

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <sstream>
#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc {
namespace testing_internal {

// Empty when [ptr, ptr + n) is locked, else why not (the first unlocked byte and where).
inline std::string WhyNotLocked(const volatile void* ptr, size_t n) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(ptr);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t end = start + (n == 0 ? 1 : n);
  for (uintptr_t b = start; b < end && b >= start; b = (b & ~(page - 1)) + page) {
    const void* byte = reinterpret_cast<const void*>(b);
    if (pmalloc_is_protected(byte) == 1) continue;
    const char* range_name = nullptr;
    const int range = pmalloc_is_protected_range(byte, &range_name);
    if (range == 1) continue;
    std::ostringstream why;
    why << "first unlocked byte " << byte << " (offset " << (b - start) << " of " << n
        << " bytes at " << reinterpret_cast<const void*>(start) << ") is ";
    if (const pmalloc_pool* pool = pmalloc_pool_of(byte)) {
      why << "in pool '" << pmalloc_pool_name(pool) << "', which is writable (not protected)";
    } else if (range == 0) {
      why << "in registered lockdown range '" << (range_name == nullptr ? "?" : range_name)
          << "', not protected yet (no pmalloc_lockdown)";
    } else {
      why << "in no pmalloc pool and no registered lockdown range";
    }
    return why.str();
  }
  return std::string();
}

inline ::testing::AssertionResult CheckLocked(const char* expr, const volatile void* ptr,
                                              size_t n) {
  const std::string why = WhyNotLocked(ptr, n);
  if (why.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " is not locked: " << why;
}

inline ::testing::AssertionResult CheckSealed(const char* expr, const pmalloc_pool* pool) {
  pmalloc_stats stats;
  if (pmalloc_pool_stats(pool, &stats) != 0) {
    return ::testing::AssertionFailure()
           << expr << " is not a valid pool (pmalloc_pool_stats: " << strerror(errno) << ")";
  }
  if (stats.is_sealed == 1) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "pool '" << pmalloc_pool_name(pool) << "' (" << expr << ") is not sealed ("
         << (stats.is_protected == 1 ? "protected" : "writable") << ", " << stats.areas
         << " areas)";
}

// True when the captured stderr holds pmalloc's fault report line.
inline bool HasFaultReport(const std::string& err) {
  for (const char* head : {"pmalloc: write to ", "pmalloc: access to "}) {
    for (size_t at = err.find(head); at != std::string::npos; at = err.find(head, at + 1)) {
      if (at == 0 || err[at - 1] == '\n') return true;
    }
  }
  return false;
}

template <class Fn>
::testing::AssertionResult CheckWriteFaults(const char* statement, Fn&& fn) {
  int fds[2];
  if (pipe(fds) != 0) {
    return ::testing::AssertionFailure() << "pipe: " << strerror(errno);
  }
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return ::testing::AssertionFailure() << "fork: " << strerror(errno);
  }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    const struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    alarm(60);
    fn();
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[4096];
  for (;;) {
    const ssize_t got = read(fds[0], buf, sizeof(buf));
    if (got > 0) {
      err.append(buf, static_cast<size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const bool segv = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
  if (segv && HasFaultReport(err)) return ::testing::AssertionSuccess();
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  failure << "`" << statement << "` did not fault on locked memory: the child ";
  if (WIFEXITED(status)) {
    failure << "exited with status " << WEXITSTATUS(status) << " (no fault)";
  } else if (WIFSIGNALED(status) && !segv) {
    failure << "was killed by signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status))
            << "), not SIGSEGV";
  } else if (segv) {
    failure << "was killed by SIGSEGV without pmalloc's fault report (not a write to a "
               "locked pool or range)";
  } else {
    failure << "ended with wait status " << status;
  }
  failure << "; its stderr:\n" << (err.empty() ? std::string("(empty)\n") : err);
  return failure;
}

struct Bytes {
  const volatile void* ptr;
  size_t n;
};
template <class T>
Bytes BytesOf(T* p) {
  return {p, sizeof(T)};
}
inline Bytes BytesOf(const volatile void* p) { return {p, 1}; }
inline Bytes BytesOf(void* p) { return {p, 1}; }
inline Bytes BytesOf(const void* p) { return {p, 1}; }
template <class P, class S>
Bytes BytesOf(const std::pair<P, S>& range) {
  return {range.first, static_cast<size_t>(range.second)};
}
template <class C>
auto BytesOf(const C& c) -> decltype(c.data(), c.size(), Bytes{}) {
  return {c.data(), c.size() * sizeof(*c.data())};
}

class IsLockedMemoryMatcher {
 public:
  template <class T>
  bool MatchAndExplain(const T& x, ::testing::MatchResultListener* listener) const {
    const Bytes b = BytesOf(x);
    const std::string why = WhyNotLocked(b.ptr, b.n);
    if (!why.empty()) *listener << why;
    return why.empty();
  }
  void DescribeTo(std::ostream* os) const { *os << "is locked memory"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is not locked memory"; }
};

}  // namespace testing_internal

// gmock matcher: the bytes of a pointer, pair or container are locked (see the top).
inline ::testing::PolymorphicMatcher<testing_internal::IsLockedMemoryMatcher> IsLockedMemory() {
  return ::testing::MakePolymorphicMatcher(testing_internal::IsLockedMemoryMatcher());
}

}  // namespace pmalloc

#define EXPECT_LOCKED(ptr, n) \
  EXPECT_PRED_FORMAT2(::pmalloc::testing_internal::CheckLockedFormat, ptr, n)
#define ASSERT_LOCKED(ptr, n) \
  ASSERT_PRED_FORMAT2(::pmalloc::testing_internal::CheckLockedFormat, ptr, n)
#define EXPECT_WRITE_FAULTS(...) \
  EXPECT_TRUE(::pmalloc::testing_internal::CheckWriteFaults(#__VA_ARGS__, [&]() { __VA_ARGS__; }))
#define ASSERT_WRITE_FAULTS(...) \
  ASSERT_TRUE(::pmalloc::testing_internal::CheckWriteFaults(#__VA_ARGS__, [&]() { __VA_ARGS__; }))
#define EXPECT_POOL_SEALED(pool) \
  EXPECT_PRED_FORMAT1(::pmalloc::testing_internal::CheckSealedFormat, pool)
#define ASSERT_POOL_SEALED(pool) \
  ASSERT_PRED_FORMAT1(::pmalloc::testing_internal::CheckSealedFormat, pool)

namespace pmalloc {
namespace testing_internal {
// The predicate-format forms the macros use (gtest passes the expressions' text).
inline ::testing::AssertionResult CheckLockedFormat(const char* ptr_expr, const char*,
                                                    const volatile void* ptr, size_t n) {
  return CheckLocked(ptr_expr, ptr, n);
}
inline ::testing::AssertionResult CheckSealedFormat(const char* expr, const pmalloc_pool* pool) {
  return CheckSealed(expr, pool);
}
}  // namespace testing_internal
}  // namespace pmalloc

#endif  // PMALLOC_TESTING_H_
