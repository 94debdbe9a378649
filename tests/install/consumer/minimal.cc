// The minimal C++ example of docs/pools.md: an RAII pool, a container in it, lockdown.
#include <cstdio>
#include <pmalloc/pmalloc.hpp>
#include <vector>

int main() {
  absl::StatusOr<pmalloc::Pool> pool = pmalloc::Pool::Create("rules");
  if (!pool.ok()) return std::fprintf(stderr, "%s\n", pool.status().ToString().c_str()), 1;
  std::vector<int, pmalloc::PoolAllocator<int>> ports{pmalloc::PoolAllocator<int>(*pool)};
  for (int p : {22, 80, 443}) ports.push_back(p);
  int* limit = pool->New<int>(1000);
  if (absl::Status st = pmalloc::Lockdown(); !st.ok()) {  // every non-manual pool
    return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  }
  // ports[0] = 23; or *limit = 0;  would now die with SIGSEGV
  std::printf("%zu ports, limit %d, protected: %d\n", ports.size(), *limit,
              pool->stats().is_protected);
  return pool->stats().is_protected == 1 ? 0 : 1;
}
