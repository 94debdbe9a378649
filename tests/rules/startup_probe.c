/* An unmodified program (it does not link libpmalloc) for tests/rules/rules_test.sh: its
 * constructor allocates blocks at known sites, then main reports where each block lives,
 * and depending on argv writes one of them in a forked child, or reallocs and frees them
 * after lockdown. Run under LD_PRELOAD=libpmalloc.so PMALLOC_CONF=tag:startup,... The
 * pmalloc API is reached with dlsym only to observe (pmalloc_pool_of, pmalloc_is_protected)
 * and for the explicit-API EPERM check. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Wrappers, exported (the executable is linked with -rdynamic) so pmalloc can find them. */
__attribute__((noinline, visibility("default"))) void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL) abort();
  return p;
}
__attribute__((noinline, visibility("default"))) void *my_alloc(size_t n) {
  void *p = malloc(n);
  __asm__ volatile("" ::"r"(p) : "memory"); /* not a tail call: a frame of its own */
  return p;
}

enum { A, B, W, C, S, T, D, NBLOCKS };
static const char *const names[NBLOCKS] = {"A", "B", "W", "C", "S", "T", "D"};
static char *blocks[NBLOCKS];
static void *api_block;

__attribute__((noinline)) static char *alloc_a(void) { return malloc(48); }
__attribute__((noinline)) static char *alloc_b(void) { return calloc(4, 16); }
__attribute__((noinline)) static char *alloc_w(void) { return xmalloc(40); }
__attribute__((noinline)) static char *alloc_c(void) { return my_alloc(24); }
__attribute__((noinline)) static char *alloc_s(void) { return strdup("a string at start-up"); }
static void *thread_main(void *arg) {
  (void)arg;
  blocks[T] = malloc(100);
  return NULL;
}

__attribute__((constructor)) static void build(void) {
  blocks[A] = alloc_a();
  strcpy(blocks[A], "block A");
  blocks[B] = alloc_b();
  blocks[W] = alloc_w();
  blocks[C] = alloc_c();
  blocks[S] = alloc_s();
  pthread_t t;
  pthread_create(&t, NULL, thread_main, NULL);
  pthread_join(t, NULL);
  /* A library loaded now (PROBE_DL: its path) allocates: its site names it. */
  const char *dl = getenv("PROBE_DL");
  void *h = dl != NULL ? dlopen(dl, RTLD_NOW) : NULL;
  char *(*dl_alloc)(void) = h != NULL ? (char *(*)(void))dlsym(h, "probe_dl_alloc") : NULL;
  blocks[D] = dl_alloc != NULL ? dl_alloc() : malloc(72);
  struct pmalloc_pool *(*create)(const char *, size_t, unsigned, unsigned) =
      (struct pmalloc_pool * (*)(const char *, size_t, unsigned, unsigned))
          dlsym(RTLD_DEFAULT, "pmalloc_create_pool");
  void *(*pm)(struct pmalloc_pool *, size_t) =
      (void *(*)(struct pmalloc_pool *, size_t))dlsym(RTLD_DEFAULT, "pmalloc");
  if (create != NULL && pm != NULL) api_block = pm(create("api", 0, 0, 0), 32);
}

static const char *pool_name(const void *p) {
  void *(*pool_of)(const void *) = (void *(*)(const void *))dlsym(RTLD_DEFAULT, "pmalloc_pool_of");
  const char *(*name)(const void *) =
      (const char *(*)(const void *))dlsym(RTLD_DEFAULT, "pmalloc_pool_name");
  void *pool = pool_of != NULL ? pool_of(p) : NULL;
  return pool != NULL && name != NULL ? name(pool) : "none";
}

static int is_protected(const void *p) {
  int (*prot)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "pmalloc_is_protected");
  return prot != NULL ? prot(p) : -1;
}

/* A child writes block i; returns what happened to it. */
static void child_write(int i) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    blocks[i][1] = 'X';
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    printf("write %s: killed by signal %d\n", names[i], WTERMSIG(status));
  } else {
    printf("write %s: exit %d\n", names[i], WEXITSTATUS(status));
  }
}

int main(int argc, char **argv) {
  for (int i = 0; i < NBLOCKS; ++i) {
    printf("%s pool=%s protected=%d\n", names[i], pool_name(blocks[i]), is_protected(blocks[i]));
  }
  char *late = malloc(64);
  printf("late pool=%s\n", pool_name(late));
  free(late);
  if (argc >= 3 && strcmp(argv[1], "write") == 0) {
    for (int i = 0; i < NBLOCKS; ++i) {
      if (strcmp(argv[2], names[i]) == 0) child_write(i);
    }
  } else if (argc >= 2 && strcmp(argv[1], "read") == 0) {
    /* The kernel cannot write a locked block: read() fails with EFAULT, pmalloc reports. */
    int fds[2];
    if (pipe(fds) != 0 || write(fds[1], "data", 4) != 4) return 3;
    fflush(stdout);
    ssize_t n = read(fds[0], blocks[B], 4);
    printf("read returned %zd\n", n);
  } else if (argc >= 2 && strcmp(argv[1], "realloc") == 0) {
    char *old = blocks[A];
    char *r = realloc(old, 4096);
    printf("realloc moved=%d pool=%s content=%s\n", r != old, pool_name(r), r ? r : "(null)");
    r[4000] = 'x'; /* writable */
    free(r);
    char *s = realloc(blocks[S], 8); /* shrinking a locked block moves it too */
    printf("realloc shrink moved=%d pool=%s content=%.7s\n", s != blocks[S], pool_name(s), s);
    free(s);
    free(blocks[B]); /* a locked block: only un-accounted */
    printf("free of a locked block ok\n");
    if (api_block != NULL) {
      errno = 0;
      void *q = realloc(api_block, 64);
      printf("api realloc null=%d EPERM=%d\n", q == NULL, errno == EPERM);
    }
  }
  printf("done\n");
  return 0;
}
