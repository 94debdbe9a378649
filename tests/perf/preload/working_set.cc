// Growing and shrinking working set: the live set grows to a peak of mixed-size objects
// (16 B..4 KiB, a few 16..256 KiB), shrinks to a tenth, grows again, ...: a program whose
// footprint must follow its live data instead of its peak ever.
// Usage: bench_working_set [cycles]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  const int cycles = argc > 1 ? atoi(argv[1]) : 12;
  constexpr size_t kPeak = 200000;
  std::vector<void*> live;
  live.reserve(kPeak);
  uint64_t x = 7, sum = 0;
  for (int c = 0; c < cycles; ++c) {
    // Peaks alternate between the full and a half working set.
    const size_t peak = (c & 1) ? kPeak / 2 : kPeak;
    while (live.size() < peak) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const unsigned r = static_cast<unsigned>(x >> 40);
      size_t size = (r & 7) != 0 ? 16 + (r >> 4) % 240 : 16 + (r >> 4) % 4080;
      if ((r & 1023) == 0) size = size_t{16} << (10 + (r >> 10) % 5);
      auto* p = static_cast<unsigned char*>(malloc(size));
      if (p == nullptr) return 1;
      memset(p, static_cast<int>(r), size < 64 ? size : 64);
      p[size - 1] = 1;
      live.push_back(p);
    }
    while (live.size() > peak / 10) {  // free random victims down to a tenth
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const size_t i = (x >> 33) % live.size();
      sum += *static_cast<unsigned char*>(live[i]);
      free(live[i]);
      live[i] = live.back();
      live.pop_back();
    }
  }
  for (void* p : live) free(p);
  printf("%llu\n", static_cast<unsigned long long>(sum));
  return 0;
}
