// Test-only: preloaded beside libpmalloc.so into a server, it writes one byte to a chosen
// address when a signal arrives, to show that a write into locked memory is stopped.
//   PMALLOC_ATTACK_FILE    file holding the target address (hex); read at each signal, so
//                          the test can choose it after start-up (from pmalloc-inspect)
//   PMALLOC_ATTACK_SIGNAL  the signal number (default 40, a real-time signal neither nginx
//                          nor redis uses; nginx uses HUP USR1 USR2 WINCH QUIT TERM INT ALRM
//                          IO CHLD, redis TERM INT USR1 SEGV BUS FPE ILL ALRM)
//   PMALLOC_ATTACK_POOL    if set, a path: the constructor creates pool "attack-target" with
//                          one 48-byte allocation and writes its address there (for builds
//                          whose library cannot tag a server's own allocations)
// Uses only async-signal-safe calls in the handler.
#include <errno.h>
#include <fcntl.h>
#include <pmalloc/pmalloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char attack_file[4096];

static void Say(const char* s) { (void)!write(2, s, strlen(s)); }

static void OnAttack(int sig) {
  (void)sig;
  int saved = errno;
  char buf[64] = {0};
  int fd = open(attack_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Say("attack_helper: cannot open the address file\n");
    errno = saved;
    return;
  }
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  uintptr_t addr = 0;
  for (ssize_t i = 0; i < n; ++i) {
    char c = buf[i];
    if (c == 'x' || c == 'X')
      addr = 0;  // skip a 0x prefix
    else if (c >= '0' && c <= '9')
      addr = addr * 16 + (uintptr_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      addr = addr * 16 + (uintptr_t)(c - 'a' + 10);
    else
      break;
  }
  Say("attack_helper: writing one byte at ");
  Say(buf);
  if (n == 0 || buf[n - 1] != '\n') Say("\n");
  *(volatile char*)addr = 'X';
  Say("attack_helper: the write went through\n");
  errno = saved;
}

__attribute__((constructor)) static void AttackHelperInit(void) {
  const char* file = getenv("PMALLOC_ATTACK_FILE");
  if (file == NULL || strlen(file) >= sizeof attack_file) return;
  strcpy(attack_file, file);
  const char* sig_text = getenv("PMALLOC_ATTACK_SIGNAL");
  int sig = sig_text ? atoi(sig_text) : 40;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnAttack;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(sig, &sa, NULL);

  const char* pool_out = getenv("PMALLOC_ATTACK_POOL");
  if (pool_out == NULL) return;
  struct pmalloc_pool* pool = pmalloc_create_pool("attack-target", 0, 0, 0);
  char* target = pool ? (char*)pzalloc(pool, 48) : NULL;
  if (target == NULL) {
    Say("attack_helper: cannot create pool attack-target\n");
    return;
  }
  strcpy(target, "locked by pmalloc");
  int fd = open(pool_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[32];
  int len = 0;
  uintptr_t v = (uintptr_t)(target + 8);
  char digits[20];
  int nd = 0;
  do {
    digits[nd++] = "0123456789abcdef"[v % 16];
    v /= 16;
  } while (v != 0);
  line[len++] = '0';
  line[len++] = 'x';
  while (nd > 0) line[len++] = digits[--nd];
  line[len++] = '\n';
  (void)!write(fd, line, (size_t)len);
  close(fd);
}
