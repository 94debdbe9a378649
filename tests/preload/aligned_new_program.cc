// A C++17 program exercising over-aligned new/delete (align_val_t forms), sized delete,
// nothrow new and the containers built on them. Run with and without the shim by
// tests/preload/real_programs.sh; its output must be identical. Deterministic by design.
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

struct alignas(64) CacheLine {
  uint64_t v[8];
};
struct alignas(4096) Page {
  char bytes[4096];
};

template <class T>
bool IsAligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % alignof(T) == 0;
}

int main() {
  uint64_t sum = 0;
  int misaligned = 0;
  for (int round = 0; round < 200; ++round) {
    auto* line = new CacheLine{};  // operator new(size_t, align_val_t)
    misaligned += !IsAligned(line);
    line->v[round % 8] = static_cast<uint64_t>(round);
    sum += line->v[round % 8];
    delete line;  // operator delete(void*, size_t, align_val_t)

    auto* lines = new CacheLine[static_cast<size_t>(round % 7 + 1)];  // new[] aligned
    misaligned += !IsAligned(lines);
    delete[] lines;

    auto page = std::make_unique<Page>();
    misaligned += !IsAligned(page.get());
    page->bytes[round] = 1;
    sum += static_cast<uint64_t>(page->bytes[round]);

    auto* nt = new (std::nothrow) CacheLine;
    misaligned += nt == nullptr || !IsAligned(nt);
    ::operator delete (nt, std::align_val_t{alignof(CacheLine)}, std::nothrow);

    auto* small = new int(round);  // sized delete of a plain object
    sum += static_cast<uint64_t>(*small);
    delete small;
  }
  std::vector<CacheLine> v(1000);
  misaligned += !IsAligned(v.data());
  for (size_t i = 0; i < v.size(); ++i) v[i].v[0] = i;
  std::map<std::string, std::vector<CacheLine>> m;
  std::unordered_map<int, std::string> u;
  for (int i = 0; i < 5000; ++i) {
    m["key-" + std::to_string(i % 97)].push_back(v[static_cast<size_t>(i) % v.size()]);
    u[i] = std::string(static_cast<size_t>(i % 50), 'a' + static_cast<char>(i % 26));
  }
  for (const auto& [k, vec] : m) {
    sum += k.size() + vec.size();
    for (const CacheLine& c : vec) sum += c.v[0];
    misaligned += !IsAligned(vec.data());
  }
  for (const auto& [k, s] : u) sum += static_cast<uint64_t>(k) + s.size();
  std::printf("sum=%llu misaligned=%d keys=%zu\n", static_cast<unsigned long long>(sum), misaligned,
              m.size());
  return misaligned == 0 ? 0 : 1;
}
