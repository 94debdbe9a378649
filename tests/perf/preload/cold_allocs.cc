// Cold allocation cost (issue 11): one fresh process, N malloc calls timed in-process from
// the first one on, so the allocator's first touches (page faults of pool pages and of its
// off-page bitmaps, a fresh pool's first areas) are all in the number. Sizes: `mixed` is
// 8-512 B from a fixed generator, `16` is 16 B only. Run the same binary under
// LD_PRELOAD=libjemalloc.so.2 and under libpmalloc.so + libtag_all.so (every call a tagged
// pool allocation): tests/perf/cold_alloc_bench.sh. Prints ns per allocation.
// Usage: cold_allocs mixed|16 [N]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

namespace {

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  const bool mixed = argc < 2 || strcmp(argv[1], "16") != 0;
  const int n = argc > 2 ? atoi(argv[2]) : 100000;
  // Sizes first (the generator's cost stays out of the timed loop), on the stack's side:
  // static arrays so the only heap calls timed are the ones measured.
  static unsigned short sizes[1 << 20];
  static void* keep[1 << 20];
  if (n <= 0 || n > (1 << 20)) return 2;
  unsigned x = 12345;
  for (int i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    sizes[i] = mixed ? static_cast<unsigned short>(8 + (x >> 8) % 505) : 16;
  }
  const double t0 = Now();
  for (int i = 0; i < n; ++i) {
    keep[i] = malloc(sizes[i]);
    asm volatile("" ::"r"(keep[i]) : "memory");
  }
  const double t1 = Now();
  for (int i = 0; i < n; ++i) free(keep[i]);
  printf("%.1f\n", (t1 - t0) / n);
  return 0;
}
