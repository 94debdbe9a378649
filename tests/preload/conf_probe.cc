// PMALLOC_CONF probe: run by CTest with different PMALLOC_CONF values (tests/preload/
// CMakeLists.txt); prints one line per fact, and "probe done" when it ran to the end.
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "pmalloc/pmalloc.h"

namespace {

// Data built by a constructor, before main: what lockdown:main is for.
char* built_by_ctor = nullptr;
__attribute__((constructor)) void BuildBeforeMain() {
  pmalloc_pool* pool = pmalloc_create_pool("ctor", 0, 0, 0);
  built_by_ctor = pstrdup(pool, "built by a constructor");
}

int Disable() {
  pmalloc_pool* pool = pmalloc_create_pool("disabled", 0, 0, 0);
  if (pool == nullptr) return 1;
  char* p = static_cast<char*>(pmalloc(pool, 100));
  char* z = static_cast<char*>(pzalloc(pool, 100));
  void* a = pmalloc_aligned(pool, 10, 256);
  char* s = pstrdup(pool, "jemalloc memory");
  int bad = 0;
  bad += p == nullptr || z == nullptr || a == nullptr || s == nullptr;
  bad += pmalloc_pool_of(p) != nullptr || pmalloc_pool_of(s) != nullptr;
  bad += (reinterpret_cast<uintptr_t>(a) & 255) != 0;
  for (int i = 0; i < 100; ++i) bad += z[i] != 0;
  bad += pmalloc_usable_size(p) < 100;
  bad += pmalloc_scope_enter(pool) != nullptr;
  void* m = malloc(10);  // scope stays untagged
  bad += pmalloc_scope_current() != nullptr || pmalloc_pool_of(m) != nullptr;
  free(m);
  bad += pmalloc_lockdown(PMALLOC_LOCKDOWN_SEAL) != 0;
  bad += pmalloc_protect_pool(pool) != 0;
  memset(p, 1, 100);  // still writable: lockdown was a no-op
  pfree(pool, p);
  free(z);  // plain free of pool-API memory goes back to jemalloc
  pfree(pool, a);
  pfree(pool, s);
  printf("disable ok=%d\n", bad == 0);
  return bad;
}

int Seal() {
  pmalloc_pool* pool = pmalloc_create_pool("sealme", 0, 0, 0);
  pmalloc(pool, 10);
  const int rc = pmalloc_lockdown(0);  // seal:true adds PMALLOC_LOCKDOWN_SEAL
  pmalloc_stats st{};
  pmalloc_pool_stats(pool, &st);
  printf("sealed=%d enosys=%d\n", st.is_sealed, rc != 0 && errno == ENOSYS);
  return 0;
}

int Stats() {
  pmalloc_pool* pool = pmalloc_create_pool("probe-stats", 0, 0, 0);
  for (int i = 0; i < 3; ++i) pmalloc(pool, 100);
  return 0;
}

int Signal() {
  raise(SIGUSR2);
  int protected_now = 0;
  for (int i = 0; i < 5000 && !protected_now; ++i) {
    protected_now = pmalloc_is_protected(built_by_ctor);
    if (!protected_now) usleep(1000);
  }
  printf("protected=%d\n", protected_now);
  return 0;
}

int Window() {
  pmalloc_pool* pool = pmalloc_create_pool("big", 0, 0, PMALLOC_POOL_MANUAL);
  void* p = pmalloc(pool, size_t{700} << 20);
  printf("big=%s\n", p != nullptr ? "ok" : errno == ENOMEM ? "ENOMEM" : "other");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  int rc = 0;
  if (mode == "disable") {
    rc = Disable();
  } else if (mode == "seal") {
    rc = Seal();
  } else if (mode == "stats") {
    rc = Stats();
  } else if (mode == "main") {
    printf("protected=%d\n", pmalloc_is_protected(built_by_ctor));
  } else if (mode == "signal") {
    rc = Signal();
  } else if (mode == "window") {
    rc = Window();
  }
  if (rc == 0) printf("probe done\n");
  return rc;
}
