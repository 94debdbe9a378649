// Protect time for populated pools of 1 MiB .. 1 GiB. pmalloc_protect_pool makes one
// mprotect call per area (PMALLOC_CONF=protect:mprotect) or moves each area onto a shared
// memfd mapping (protect:shared, the default: one copy of the touched pages), so its cost
// follows the number of areas and the bytes, not the number of allocations.
// tests/perf/protect_modes.sh runs these under both modes side by side. References on plain
// anonymous memory of the same size: one mprotect over the whole range, and one mprotect per 4 KiB
// page (what a per-allocation or per-page protector pays).
//
// Arguments: pool MiB, refill KiB (0: the default 64 KiB), allocation size.
// Counters: areas = mprotect calls made by pmalloc_protect_pool; allocs.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "benchmark/benchmark.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc_bench {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_ProtectPool(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  const size_t refill = static_cast<size_t>(state.range(1)) << 10;
  const size_t size = static_cast<size_t>(state.range(2));
  const size_t count = bytes / size;
  std::vector<void*> blocks(count);
  pmalloc_stats st{};
  for (auto _ : state) {
    pmalloc_pool* pool = pmalloc_create_pool("bench-protect", refill, 0, PMALLOC_POOL_MANUAL);
    for (size_t i = 0; i < count; ++i) {
      blocks[i] = pmalloc(pool, size);
      if (blocks[i] == nullptr) {
        state.SkipWithError("pmalloc failed");
        return;
      }
      memset(blocks[i], 0x5a, size);  // populate: the kernel's work grows with present pages
    }
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = pmalloc_protect_pool(pool);
    state.SetIterationTime(Seconds(t0));
    pmalloc_pool_stats(pool, &st);
    for (size_t i = 0; i < count; ++i) pfree(pool, blocks[i]);
    if (rc != 0 || pmalloc_destroy_pool(pool) != 0) {
      state.SkipWithError("protect or destroy failed");
      return;
    }
  }
  state.counters["areas"] = static_cast<double>(st.areas);
  state.counters["allocs"] = static_cast<double>(count);
}

// A sparse pool: one area of range(0) MiB handed out as one block, of which only every
// 64th page was written. protect:shared copies only the pages the process touched.
void BM_ProtectSparse(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  constexpr size_t kStride = size_t{64} << 12;
  for (auto _ : state) {
    pmalloc_pool* pool = pmalloc_create_pool("bench-sparse", bytes, 0, PMALLOC_POOL_MANUAL);
    char* p = static_cast<char*>(pmalloc(pool, bytes));
    if (p == nullptr) {
      state.SkipWithError("pmalloc failed");
      return;
    }
    for (size_t off = 0; off < bytes; off += kStride) p[off] = 1;
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = pmalloc_protect_pool(pool);
    state.SetIterationTime(Seconds(t0));
    pfree(pool, p);
    if (rc != 0 || pmalloc_destroy_pool(pool) != 0) {
      state.SkipWithError("protect or destroy failed");
      return;
    }
  }
  state.counters["touched_MiB"] = static_cast<double>(bytes / kStride * 4096) / (1 << 20);
}

// fork() + the child's _exit + waitpid, in a process that holds a protected, populated and
// recently read pool of range(0) MiB (0: no pool) in one area (range(1) == 1) or in 64 KiB
// areas (range(1) == 0). protect:mprotect leaves private copy-on-write memory, whose page
// table entries fork copies; protect:shared leaves a shared file mapping, which it does not.
void BM_ForkWithProtectedPool(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  const size_t refill = state.range(1) != 0 ? bytes : 0;
  pmalloc_pool* pool = nullptr;
  std::vector<char*> blocks(bytes / 4096);
  if (bytes != 0) {
    pool = pmalloc_create_pool("bench-fork", refill, 0, PMALLOC_POOL_MANUAL);
    for (char*& b : blocks) {
      b = static_cast<char*>(pmalloc(pool, 4096));
      if (b == nullptr) {
        state.SkipWithError("pmalloc failed");
        return;
      }
      memset(b, 0x5a, 4096);
    }
    if (pmalloc_protect_pool(pool) != 0) {
      state.SkipWithError("protect failed");
      return;
    }
    unsigned sum = 0;
    for (char* b : blocks) sum += *static_cast<volatile char*>(b);
    benchmark::DoNotOptimize(sum);
  }
  long vmas = 0;  // fork's work grows with the mappings of the process
  if (FILE* maps = fopen("/proc/self/maps", "r")) {
    for (int c; (c = fgetc(maps)) != EOF;) vmas += c == '\n';
    fclose(maps);
  }
  state.counters["vmas"] = static_cast<double>(vmas);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) _exit(0);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
      state.SkipWithError("fork failed");
      return;
    }
    state.SetIterationTime(Seconds(t0));
  }
  if (pool != nullptr) {
    for (char* b : blocks) pfree(pool, b);
    (void)pmalloc_destroy_pool(pool);
  }
}

// Kibibytes on the line starting with `key` in `path` (/proc/meminfo, smaps_rollup), or -1.
long ProcKiB(const char* path, const char* key) {
  FILE* f = fopen(path, "r");
  if (f == nullptr) return -1;
  char line[256];
  long v = -1;
  while (fgets(line, sizeof(line), f) != nullptr) {
    if (strncmp(line, key, strlen(key)) == 0) v = strtol(line + strlen(key), nullptr, 10);
  }
  fclose(f);
  return v;
}

// Physical memory behind a fully written pool of range(0) MiB (one area), before and after
// protect: anonymous pages of this process (smaps_rollup) and shmem pages (system-wide
// /proc/meminfo, so other processes add noise; the pool's share is hundreds of MiB).
// A private memfd mapping keeps a zero page-cache page in the memfd for every page written
// through it, next to the private copy; protect:shared leaves one page-cache page each.
void BM_PoolMemory(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  double anon_rw = 0, shmem_rw = 0, anon_ro = 0, shmem_ro = 0;
  for (auto _ : state) {
    const long anon0 = ProcKiB("/proc/self/smaps_rollup", "Anonymous:");
    const long shmem0 = ProcKiB("/proc/meminfo", "Shmem:");
    pmalloc_pool* pool = pmalloc_create_pool("bench-memory", bytes, 0, PMALLOC_POOL_MANUAL);
    char* p = static_cast<char*>(pmalloc(pool, bytes));
    if (p == nullptr) {
      state.SkipWithError("pmalloc failed");
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    memset(p, 0x5a, bytes);
    anon_rw = static_cast<double>(ProcKiB("/proc/self/smaps_rollup", "Anonymous:") - anon0);
    shmem_rw = static_cast<double>(ProcKiB("/proc/meminfo", "Shmem:") - shmem0);
    if (pmalloc_protect_pool(pool) != 0) {
      state.SkipWithError("protect failed");
      return;
    }
    anon_ro = static_cast<double>(ProcKiB("/proc/self/smaps_rollup", "Anonymous:") - anon0);
    shmem_ro = static_cast<double>(ProcKiB("/proc/meminfo", "Shmem:") - shmem0);
    state.SetIterationTime(Seconds(t0));
    pfree(pool, p);
    (void)pmalloc_destroy_pool(pool);
  }
  state.counters["writable_anon_MiB"] = anon_rw / 1024;
  state.counters["writable_shmem_MiB"] = shmem_rw / 1024;
  state.counters["protected_anon_MiB"] = anon_ro / 1024;
  state.counters["protected_shmem_MiB"] = shmem_ro / 1024;
}

// Reference: plain populated anonymous memory, one mprotect (range(1) == 0) or one per
// page (range(1) == 1).
void BM_MprotectAnon(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  const bool per_page = state.range(1) != 0;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (auto _ : state) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      state.SkipWithError("mmap failed");
      return;
    }
    madvise(p, bytes, MADV_NOHUGEPAGE);  // 4 KiB pages, like pool areas (memfd: no THP)
    memset(p, 0x5a, bytes);
    char* c = static_cast<char*>(p);
    const auto t0 = std::chrono::steady_clock::now();
    if (per_page) {
      for (size_t off = 0; off < bytes; off += page) mprotect(c + off, page, PROT_READ);
    } else {
      mprotect(p, bytes, PROT_READ);
    }
    state.SetIterationTime(Seconds(t0));
    munmap(p, bytes);
  }
  state.counters["mprotect_calls"] = per_page ? static_cast<double>(bytes / page) : 1.0;
}

// pmalloc_lockdown(0) of range(0) pools of one 64-byte allocation each (default refill:
// one 64 KiB area per pool). Lockdown protects each area with one syscall: one mprotect
// under either mode (the memfd's descriptor is closed too). Reference: BM_MprotectMany.
void BM_LockdownPools(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<pmalloc_pool*> pools(n);
  std::vector<void*> blocks(n);
  for (auto _ : state) {
    for (size_t i = 0; i < n; ++i) {
      pools[i] = pmalloc_create_pool("bench-lockdown", 0, 0, 0);
      blocks[i] = pools[i] == nullptr ? nullptr : pmalloc(pools[i], 64);
      if (blocks[i] == nullptr) {
        state.SkipWithError("pool or pmalloc failed");
        return;
      }
      memset(blocks[i], 0x5a, 64);
    }
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = pmalloc_lockdown(0);
    state.SetIterationTime(Seconds(t0));
    for (size_t i = 0; i < n; ++i) {
      pfree(pools[i], blocks[i]);
      (void)pmalloc_destroy_pool(pools[i]);
    }
    if (rc != 0) {
      state.SkipWithError("lockdown failed");
      return;
    }
  }
}

// Reference for BM_LockdownPools: range(0) separate 64 KiB anonymous mappings with one
// written page each, one mprotect(PROT_READ) per mapping.
void BM_MprotectMany(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  constexpr size_t kArea = size_t{64} << 10;
  std::vector<char*> areas(n);
  for (auto _ : state) {
    for (char*& a : areas) {
      // A gap after each mapping keeps them separate VMAs, as pool areas are.
      a = static_cast<char*>(
          mmap(nullptr, 2 * kArea, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      if (a == MAP_FAILED) {
        state.SkipWithError("mmap failed");
        return;
      }
      munmap(a + kArea, kArea);
      memset(a, 0x5a, 64);
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (char* a : areas) mprotect(a, kArea, PROT_READ);
    state.SetIterationTime(Seconds(t0));
    for (char* a : areas) munmap(a, kArea);
  }
}

// First touch: one store per 4 KiB page of a fresh range(0) MiB pool area (range(1) == 0:
// a shared memfd mapping under protect:shared, anonymous under protect:mprotect) or of a
// fresh anonymous mapping without huge pages (range(1) == 1). Time per page in the counter.
void BM_FirstTouch(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  const bool anon = state.range(1) != 0;
  for (auto _ : state) {
    pmalloc_pool* pool = nullptr;
    char* p = nullptr;
    if (anon) {
      p = static_cast<char*>(
          mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      madvise(p, bytes, MADV_NOHUGEPAGE);
    } else {
      pool = pmalloc_create_pool("bench-touch", bytes, 0, PMALLOC_POOL_MANUAL);
      p = static_cast<char*>(pmalloc(pool, bytes));
    }
    if (p == nullptr || p == MAP_FAILED) {
      state.SkipWithError("allocation failed");
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t off = 0; off < bytes; off += 4096) static_cast<volatile char*>(p)[off] = 1;
    state.SetIterationTime(Seconds(t0));
    if (anon) {
      munmap(p, bytes);
    } else {
      pfree(pool, p);
      (void)pmalloc_destroy_pool(pool);
    }
  }
  state.counters["us_per_page"] = benchmark::Counter(
      static_cast<double>(bytes / 4096) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void PoolArgs(benchmark::internal::Benchmark* b) {
  for (long mib : {1, 16, 256, 1024}) {
    b->Args({mib, 0, 4096});          // default refill: many areas
    b->Args({mib, mib << 10, 4096});  // refill = pool size: one area
  }
  // Same bytes, 64x more allocations: the protect time must not follow.
  b->Args({16, 0, 64});
  b->Args({256, 256 << 10, 64});
}

BENCHMARK(BM_ProtectPool)
    ->Apply(PoolArgs)
    ->UseManualTime()
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ProtectSparse)
    ->Arg(256)
    ->UseManualTime()
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ForkWithProtectedPool)
    ->Args({0, 1})
    ->Args({16, 1})
    ->Args({256, 1})
    ->Args({256, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PoolMemory)->Arg(256)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LockdownPools)
    ->Arg(1000)
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprotectMany)
    ->Arg(1000)
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FirstTouch)
    ->ArgsProduct({{64}, {0, 1}})
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MprotectAnon)
    ->ArgsProduct({{1, 16, 256, 1024}, {0, 1}})
    ->UseManualTime()
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pmalloc_bench
