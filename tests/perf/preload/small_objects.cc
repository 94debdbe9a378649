// Single-threaded small objects: a working set of 64k live blocks (8..512 bytes, through
// malloc/free and sized new/delete) is churned in pseudo-random order. Prints a checksum so
// that nothing is optimised away. Usage: bench_small_objects [million operations]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

uint64_t state = 88172645463325252ull;
uint64_t Next() {  // xorshift64
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

struct Slot {
  void* p;
  uint32_t size;
  bool cpp;
};

}  // namespace

int main(int argc, char** argv) {
  const long ops = (argc > 1 ? atol(argv[1]) : 30) * 1000000L;
  constexpr size_t kSlots = 1 << 16;
  static Slot slots[kSlots];
  uint64_t sum = 0;
  for (long i = 0; i < ops; ++i) {
    const uint64_t r = Next();
    Slot& s = slots[r & (kSlots - 1)];
    if (s.p != nullptr) {
      sum += static_cast<unsigned char*>(s.p)[s.size - 1];
      if (s.cpp) {
        ::operator delete(s.p, s.size);
      } else {
        free(s.p);
      }
    }
    // Mostly tiny sizes, as real programs: 8..64 bytes 3/4 of the time, up to 512 else.
    const uint32_t size =
        static_cast<uint32_t>((r >> 20) & 3 ? 8 + ((r >> 24) & 56) : 8 + ((r >> 24) & 504));
    s.cpp = (r >> 40) & 1;
    s.p = s.cpp ? ::operator new(size) : malloc(size);
    s.size = size;
    static_cast<unsigned char*>(s.p)[0] = static_cast<unsigned char>(i);
    static_cast<unsigned char*>(s.p)[size - 1] = static_cast<unsigned char>(r);
  }
  for (Slot& s : slots) {
    if (s.p == nullptr) continue;
    if (s.cpp) {
      ::operator delete(s.p, s.size);
    } else {
      free(s.p);
    }
  }
  printf("%llu\n", static_cast<unsigned long long>(sum));
  return 0;
}
