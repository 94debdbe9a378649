// Realloc growth: many buffers grown a little at a time (as string builders and vectors
// written in C do), from 16 bytes to 4..64 KiB, then freed; repeated.
// Usage: bench_realloc_growth [rounds]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 40;
  constexpr int kBuffers = 512;
  uint64_t sum = 0;
  uint64_t x = 42;
  for (int round = 0; round < rounds; ++round) {
    char* bufs[kBuffers] = {};
    size_t sizes[kBuffers] = {};
    size_t limit[kBuffers];
    for (int i = 0; i < kBuffers; ++i) limit[i] = size_t{4096} << (i % 5);
    bool growing = true;
    while (growing) {
      growing = false;
      for (int i = 0; i < kBuffers; ++i) {
        if (sizes[i] >= limit[i]) continue;
        growing = true;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const size_t next = sizes[i] + 16 + ((x >> 40) & 48);
        char* p = static_cast<char*>(realloc(bufs[i], next));
        if (p == nullptr) return 1;
        memset(p + sizes[i], static_cast<int>(x), next - sizes[i]);
        bufs[i] = p;
        sizes[i] = next;
      }
    }
    for (int i = 0; i < kBuffers; ++i) {
      sum += static_cast<unsigned char>(bufs[i][sizes[i] / 2]);
      free(bufs[i]);
    }
  }
  printf("%llu\n", static_cast<unsigned long long>(sum));
  return 0;
}
