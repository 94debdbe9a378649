// A cfrac/espresso-like mix: most objects are small and die young (arbitrary-precision
// numbers and cubes: 16..200 bytes, freed within a few operations), some live long (a
// result set that grows slowly and is rebuilt every phase), arrays are grown with realloc
// and a few scratch buffers of 1..32 KiB come and go.
// Usage: bench_mixed [million operations]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

uint64_t x = 99;
unsigned Next() {
  x = x * 6364136223846793005ull + 1442695040888963407ull;
  return static_cast<unsigned>(x >> 33);
}

}  // namespace

int main(int argc, char** argv) {
  const long ops = (argc > 1 ? atol(argv[1]) : 20) * 1000000L;
  constexpr size_t kYoung = 64, kOld = 8192;
  void* young[kYoung] = {};
  void* old[kOld] = {};
  size_t old_count = 0;
  char* array = nullptr;
  size_t array_size = 0;
  uint64_t sum = 0;
  for (long i = 0; i < ops; ++i) {
    const unsigned r = Next();
    const size_t slot = r % kYoung;
    if (young[slot] != nullptr) {
      sum += *static_cast<unsigned char*>(young[slot]);
      free(young[slot]);
    }
    const size_t size = 16 + (r >> 8) % 185;
    young[slot] = malloc(size);
    if (young[slot] == nullptr) return 1;
    memset(young[slot], static_cast<int>(i), size < 32 ? size : 32);
    if ((r & 15) == 0) {  // survivors join the result set
      if (old_count == kOld) {
        for (size_t k = 0; k < kOld; k += 2) free(old[k]);  // a phase ends: half survive
        size_t n = 0;
        for (size_t k = 1; k < kOld; k += 2) old[n++] = old[k];
        old_count = n;
      }
      old[old_count] = malloc(16 + (r >> 12) % 113);
      if (old[old_count] == nullptr) return 1;
      memset(old[old_count], 1, 16);
      ++old_count;
    }
    if ((r & 255) == 1) {  // an array grows; reset when large
      array_size = array_size > (size_t{256} << 10) ? 64 : array_size + 64 + (r >> 20);
      array = static_cast<char*>(realloc(array, array_size));
      if (array == nullptr) return 1;
      array[array_size - 1] = 2;
    }
    if ((r & 1023) == 2) {  // scratch buffer
      const size_t n = size_t{1024} << ((r >> 12) % 6);
      char* s = static_cast<char*>(calloc(1, n));
      if (s == nullptr) return 1;
      s[n / 2] = 3;
      sum += static_cast<unsigned char>(s[n - 1] + s[n / 2]);
      free(s);
    }
  }
  for (void* p : young) free(p);
  for (size_t k = 0; k < old_count; ++k) free(old[k]);
  free(array);
  printf("%llu\n", static_cast<unsigned long long>(sum));
  return 0;
}
