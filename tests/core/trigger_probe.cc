// Run by trigger_test.cc with PMALLOC_CONF=lockdown:signal:USR2: programs whose lifetime
// and signal delivery must be the same with and without the trigger.
//   pthread_exit         main ends with pthread_exit(); a worker sleeps 100 ms and returns
//   pthread_exit_signal  as above, the worker raises the trigger first and waits for it
//   term                 main ends with pthread_exit(); a worker says "ready" and pauses
//   fork_thread          a worker forks; in the child that thread (the only one) returns:
//                        the child must end; the parent prints how
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pmalloc/pmalloc.h"

namespace {

int* value = nullptr;

void* Sleeper(void*) {
  usleep(100 * 1000);
  return nullptr;
}

void* Signaller(void*) {
  kill(getpid(), SIGUSR2);
  for (int i = 0; i < 5000 && pmalloc_is_protected(value) == 0; ++i) usleep(1000);
  printf("protected=%d\n", pmalloc_is_protected(value));
  fflush(stdout);
  return nullptr;
}

void* Pauser(void*) {
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}

void* Forker(void*) {
  const pid_t pid = fork();
  if (pid == 0) return nullptr;  // the child's last thread ends: glibc calls exit(0)
  int status = 0;
  int waited = 0;
  for (; waited < 1000 && waitpid(pid, &status, WNOHANG) != pid; ++waited) usleep(10 * 1000);
  if (waited == 1000) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    printf("child hung\n");
  } else {
    printf("child exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  fflush(stdout);
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  pmalloc_pool* pool = pmalloc_create_pool("probe", 0, 0, 0);
  value = static_cast<int*>(pmalloc(pool, sizeof(int)));
  if (value == nullptr) return 3;
  *value = 1;
  void* (*fn)(void*) = nullptr;
  if (strcmp(argv[1], "pthread_exit") == 0) fn = Sleeper;
  if (strcmp(argv[1], "pthread_exit_signal") == 0) fn = Signaller;
  if (strcmp(argv[1], "term") == 0) fn = Pauser;
  if (strcmp(argv[1], "fork_thread") == 0) fn = Forker;
  if (fn == nullptr) return 2;
  pthread_t t;
  if (pthread_create(&t, nullptr, fn, nullptr) != 0) return 4;
  pthread_exit(nullptr);
}
