// Runs a test's step in a forked child, for tests that must observe a fault or a fork's
// isolation without ending the test process.
#ifndef PMALLOC_TESTS_CORE_IN_CHILD_H_
#define PMALLOC_TESTS_CORE_IN_CHILD_H_

#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace pmalloc_test {

// Runs fn in a forked child that exits with fn's return value; returns the wait status as
// waitpid gives it, or -1 when fork or waitpid fails.
inline int InChildStatus(const std::function<int()>& fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

// As InChildStatus, but returns the child's exit code, or 128 + the signal that ended it.
inline int InChild(const std::function<int()>& fn) {
  const int status = InChildStatus(fn);
  if (status == -1) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace pmalloc_test

#endif  // PMALLOC_TESTS_CORE_IN_CHILD_H_
