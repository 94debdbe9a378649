// The cost of tag:startup per start-up allocation (docs/rules.md): N allocations of 16-256
// bytes from 64 call sites three frames deep, timed in-process; run the same binary with
// and without PMALLOC_CONF=tag:startup (lockdown:api: the program never locks, so every
// allocation of the loop is tagged). Prints ns per allocation. Usage: startup_allocs [N].
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <utility>

namespace {

constexpr int kSites = 64;
void* volatile sink;

template <int I>
__attribute__((noinline)) void* Site(size_t n) {
  void* p = malloc(n + I);
  asm volatile("" ::"r"(p) : "memory");  // a frame of its own (not a tail call)
  return p;
}

template <int... I>
struct Table {
  static constexpr void* (*kFns[sizeof...(I)])(size_t) = {&Site<I>...};
};

template <int... I>
constexpr Table<I...> MakeTable(std::integer_sequence<int, I...>) {
  return {};
}

__attribute__((noinline)) void* Middle(int i, size_t n) {
  constexpr auto t = MakeTable(std::make_integer_sequence<int, kSites>());
  void* p = t.kFns[i % kSites](n);
  asm volatile("" ::"r"(p) : "memory");
  return p;
}

__attribute__((noinline)) void* Outer(int i, size_t n) {
  void* p = Middle(i, n);
  asm volatile("" ::"r"(p) : "memory");
  return p;
}

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 200000;
  void** keep = static_cast<void**>(calloc(static_cast<size_t>(n), sizeof(void*)));
  const double t0 = Now();
  for (int i = 0; i < n; ++i) keep[i] = Outer(i, 16 + static_cast<size_t>(i % 241));
  const double t1 = Now();
  for (int i = 0; i < n; ++i) free(keep[i]);
  const double t2 = Now();
  sink = keep;
  printf("allocs %d: %.0f ns/alloc, %.0f ns/free\n", n, (t1 - t0) / n, (t2 - t1) / n);
  free(keep);
  return 0;
}
