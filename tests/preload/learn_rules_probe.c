// Learn, then enforce, an unmodified program (docs/triggers.md#learn-reports): run under
// LD_PRELOAD=libpmalloc.so with tag:startup and lockdown:serve by tests/preload/
// learn_rules_test.sh. Two start-up allocations from two sites (AllocA, AllocB), then the
// first serving call (poll) locks them.
//   write-a: writes A after lockdown and exits normally (learn mode records the write and
//            writes the rules file at exit).
//   write-b: writes A (excluded by the learned rules, so untagged: no fault), then a forked
//            child writes B (still tagged and locked: it must die by SIGSEGV); prints how
//            the child ended.
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) char* AllocA(void) {
  char* p = malloc(64);
  if (p != NULL) memset(p, 'a', 64);
  return p;
}

__attribute__((noinline)) char* AllocB(void) {
  char* p = malloc(64);
  if (p != NULL) memset(p, 'b', 64);
  return p;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  char* a = AllocA();
  char* b = AllocB();
  if (a == NULL || b == NULL) return 3;
  poll(NULL, 0, 0);  // lockdown:serve fires here
  if (strcmp(argv[1], "write-a") == 0) {
    ((volatile char*)a)[8] = 'A';
    printf("wrote a: %c\n", a[8]);
    return 0;
  }
  if (strcmp(argv[1], "write-b") == 0) {
    ((volatile char*)a)[8] = 'A';
    printf("wrote a: %c\n", a[8]);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      ((volatile char*)b)[8] = 'B';
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) {
      printf("child writing b: signal %d\n", WTERMSIG(status));
    } else {
      printf("child writing b: exit %d\n", WEXITSTATUS(status));
    }
    return 0;
  }
  return 2;
}
