// What a site costs to capture (docs/rules.md): the ways to find an allocation's callers
// without frame pointers (Debian builds have none), at the depth an allocation through a
// wrapper has (malloc face -> tagging -> wrapper -> 3 frames of the program), against a
// jemalloc malloc+free pair of the same run. tag:startup pays one _Unwind_Backtrace of
// about 4-8 frames per start-up allocation; nothing after the trigger.
#include <execinfo.h>
#include <jemalloc/jemalloc.h>
#include <unwind.h>

#include <cstdint>

#include "benchmark/benchmark.h"

namespace {

struct Walk {
  uintptr_t pcs[16];
  int n;
  int max;
};

_Unwind_Reason_Code OnFrame(_Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<Walk*>(arg);
  w->pcs[w->n++] = _Unwind_GetIP(ctx);
  return w->n == w->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

enum Method { kReturnAddress, kUnwind, kBacktrace, kJemalloc };

__attribute__((noinline)) uintptr_t Capture(Method m, int frames) {
  switch (m) {
    case kReturnAddress:
      return reinterpret_cast<uintptr_t>(__builtin_return_address(0));
    case kUnwind: {
      Walk w{{}, 0, frames};
      _Unwind_Backtrace(OnFrame, &w);
      return w.pcs[w.n - 1];
    }
    case kBacktrace: {
      void* pcs[16];
      const int n = backtrace(pcs, frames);
      return reinterpret_cast<uintptr_t>(pcs[n - 1]);
    }
    case kJemalloc: {
      void* p = mallocx(64, 0);
      benchmark::DoNotOptimize(p);
      dallocx(p, 0);
      return 0;
    }
  }
  return 0;
}

// A call chain `depth` deep above the capture, as in a program.
__attribute__((noinline)) uintptr_t Chain(int depth, Method m, int frames) {
  if (depth == 0) return Capture(m, frames);
  const uintptr_t r = Chain(depth - 1, m, frames);
  benchmark::DoNotOptimize(r);
  return r + 1;
}

void BM_Capture(benchmark::State& state) {
  const auto m = static_cast<Method>(state.range(0));
  const int frames = static_cast<int>(state.range(1));
  void* warm[1];
  backtrace(warm, 1);  // its first call loads libgcc_s: not measured
  for (auto _ : state) benchmark::DoNotOptimize(Chain(12, m, frames));
}

}  // namespace

// {method, frames}: the tagging path walks 4 frames of pmalloc, the wrappers and 3 kept.
BENCHMARK(BM_Capture)
    ->ArgNames({"method", "frames"})
    ->Args({kJemalloc, 0})
    ->Args({kReturnAddress, 1})
    ->Args({kUnwind, 4})
    ->Args({kUnwind, 8})
    ->Args({kUnwind, 12})
    ->Args({kBacktrace, 4})
    ->Args({kBacktrace, 8})
    ->Args({kBacktrace, 12});
