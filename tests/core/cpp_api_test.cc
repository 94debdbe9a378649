// The C++ API (pmalloc.hpp): pmalloc::Pool, pmalloc::PoolAllocator with standard and Abseil
// containers, and pmalloc::Lockdown. Protection claims are checked by observing the fault
// (death tests) or the returned status; process-wide lockdown runs in forked children.
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "in_child.h"
#include "pmalloc/pmalloc.hpp"

namespace {

using pmalloc_test::InChildStatus;

using pmalloc::Pool;
using pmalloc::PoolAllocator;
using pmalloc::PoolOptions;

bool InPool(const void* p, const Pool& pool) { return pmalloc_pool_of(p) == pool.get(); }

bool HasMseal() {
  void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return syscall(462, p, 4096, 0) == 0 || errno != ENOSYS;  // page left mapped on purpose
}

Pool MakePool(const char* name, PoolOptions options = {}) {
  absl::StatusOr<Pool> pool = Pool::Create(name, options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return std::move(pool).value();
}

static_assert(!std::is_copy_constructible_v<Pool>);
static_assert(!std::is_copy_assignable_v<Pool>);
static_assert(std::is_nothrow_move_constructible_v<Pool>);
static_assert(std::is_nothrow_move_assignable_v<Pool>);

TEST(CppPool, CreateErrors) {
  EXPECT_EQ(Pool::Create("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Pool::Create(std::string(PMALLOC_NAME_MAX + 1, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Pool::Create("align", {.align_order = 31}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The name is copied: a string_view that is not NUL-terminated works.
  const std::string long_name = "viewname-and-more";
  absl::StatusOr<Pool> ok = Pool::Create(std::string_view(long_name).substr(0, 8));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_STREQ(pmalloc_pool_name(ok->get()), "viewname");
  EXPECT_TRUE(Pool::Create(std::string(PMALLOC_NAME_MAX, 'y')).ok());
}

TEST(CppPool, MoveTransfersOwnership) {
  Pool a = MakePool("move-a");
  pmalloc_pool* handle = a.get();
  Pool b(std::move(a));
  EXPECT_EQ(a.get(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(b.get(), handle);
  EXPECT_TRUE(a.Destroy().ok());  // destroying an empty Pool is a no-op

  // Move assignment destroys the pool it replaces: its address range stops being pool memory.
  Pool c = MakePool("move-c");
  void* p = c.Allocate(64);
  ASSERT_NE(p, nullptr);
  c.Free(p);
  c = std::move(b);
  EXPECT_EQ(c.get(), handle);
  EXPECT_EQ(pmalloc_pool_of(p), nullptr);
}

TEST(CppPool, AllocateAlignmentAndErrors) {
  Pool pool = MakePool("cpp-alloc");
  for (size_t align : {0u, 16u, 64u, 4096u}) {
    void* p = pool.Allocate(100, align);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (align == 0 ? 16 : align), 0u);
    EXPECT_TRUE(InPool(p, pool));
    memset(p, 0x5a, 100);
    pool.Free(p);
  }
  errno = 0;
  EXPECT_EQ(pool.Allocate(8, 3), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(pool.Allocate(SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  // The C function is callable from C++ exactly as from C, through the macro.
  void* q = pmalloc(pool.get(), 24);
  ASSERT_NE(q, nullptr);
  void* (*fn)(pmalloc_pool*, size_t) = &::pmalloc::pmalloc;
  void* r = fn(pool.get(), 24);
  ASSERT_NE(r, nullptr);
  pool.Free(q);
  pool.Free(r);
  EXPECT_TRUE(pool.Destroy().ok());
}

struct alignas(64) Widget {
  Widget(int a, std::string_view b) : x(a) { memcpy(tag, b.data(), std::min(b.size(), 15ul)); }
  int x;
  char tag[16] = {};
};

TEST(CppPool, NewConstructsInPool) {
  Pool pool = MakePool("cpp-new");
  Widget* w = pool.New<Widget>(7, "seven");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w) % 64, 0u);
  EXPECT_TRUE(InPool(w, pool));
  EXPECT_EQ(w->x, 7);
  EXPECT_STREQ(w->tag, "seven");
  int* n = pool.New<int>(41);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(*n, 41);
  ASSERT_TRUE(pool.Protect().ok());
  EXPECT_EQ(pool.New<int>(1), nullptr);  // locked, not growable
  EXPECT_EQ(errno, EPERM);
  EXPECT_EXIT(w->x = 8, testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(*n = 42, testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EQ(w->x, 7);
}

TEST(CppPool, ProtectFaultsAndStats) {
  Pool pool = MakePool("cpp-protect", {.manual = true});
  char* s = static_cast<char*>(pool.Allocate(100));
  ASSERT_NE(s, nullptr);
  strcpy(s, "before");
  pmalloc_stats st = pool.stats();
  EXPECT_EQ(st.live_allocs, 1u);
  EXPECT_GE(st.live_bytes, 100u);
  EXPECT_EQ(st.areas, 1u);
  EXPECT_GE(st.mapped_bytes, 4096u);
  EXPECT_EQ(st.is_protected, 0);

  ASSERT_TRUE(pool.Protect().ok());
  st = pool.stats();
  EXPECT_EQ(st.is_protected, 1);
  EXPECT_EQ(st.is_sealed, 0);
  EXPECT_EQ(pmalloc_is_protected(s), 1);
  EXPECT_STREQ(s, "before");
  EXPECT_EXIT(s[0] = 'X', testing::KilledBySignal(SIGSEGV), "");
  EXPECT_TRUE(pool.Protect().ok());  // protecting twice is harmless

  // Free after protect only accounts; the pool can then be destroyed.
  pool.Free(s);
  st = pool.stats();
  EXPECT_EQ(st.live_allocs, 0u);
  EXPECT_GE(st.freed_after_protect_bytes, 100u);
  EXPECT_TRUE(pool.Destroy().ok());
  EXPECT_EQ(pool.get(), nullptr);
  EXPECT_EQ(pool.stats().areas, 0u);  // an empty Pool reports zeros
}

TEST(CppPool, GrowableAllocatesAfterProtect) {
  Pool pool = MakePool("cpp-grow", {.growable = true});
  int* a = pool.New<int>(1);
  ASSERT_TRUE(pool.Protect().ok());
  int* b = pool.New<int>(2);
  ASSERT_NE(b, nullptr);
  *b = 3;  // the fresh area is writable
  EXPECT_EQ(pool.stats().areas, 2u);
  EXPECT_EQ(pool.stats().is_protected, 0);
  EXPECT_EXIT(*a = 5, testing::KilledBySignal(SIGSEGV), "");
}

TEST(CppPool, DestroyBusyKeepsPool) {
  Pool pool = MakePool("cpp-busy");
  void* p = pool.Allocate(32);
  const absl::Status busy = pool.Destroy();
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition) << busy;
  EXPECT_NE(pool.get(), nullptr);
  EXPECT_TRUE(InPool(p, pool));
  pool.Free(p);
  EXPECT_TRUE(pool.Destroy().ok());
}

TEST(CppPool, DestructorLeavesBusyPoolValid) {
  char* p = nullptr;
  {
    Pool pool = MakePool("cpp-leak");
    p = static_cast<char*>(pool.Allocate(16));
    ASSERT_NE(p, nullptr);
    strcpy(p, "still here");
  }  // destroy fails with EBUSY: the memory must stay usable
  EXPECT_STREQ(p, "still here");
  EXPECT_NE(pmalloc_pool_of(p), nullptr);
}

TEST(CppPool, ReleaseGivesUpOwnership) {
  pmalloc_pool* raw = nullptr;
  {
    Pool pool = MakePool("cpp-release");
    raw = pool.release();
    EXPECT_EQ(pool.get(), nullptr);
  }
  EXPECT_STREQ(pmalloc_pool_name(raw), "cpp-release");  // still alive
  EXPECT_EQ(pmalloc_destroy_pool(raw), 0);
}

TEST(CppPool, SealIsPermanent) {
  Pool pool = MakePool("cpp-seal", {.manual = true});
  int* x = pool.New<int>(5);
  ASSERT_NE(x, nullptr);
  const absl::Status st = pool.Seal();
  if (!HasMseal()) {
    EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented) << st;
    EXPECT_EQ(pool.stats().is_protected, 1);
    GTEST_SKIP() << "kernel without mseal(2)";
  }
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(pool.stats().is_sealed, 1);
  EXPECT_EXIT(*x = 6, testing::KilledBySignal(SIGSEGV), "");
  void* page = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(x) & ~uintptr_t{4095});
  EXPECT_EQ(mprotect(page, 4096, PROT_READ | PROT_WRITE), -1);
  EXPECT_EQ(errno, EPERM);
  pool.Free(x);
  EXPECT_EQ(pool.Destroy().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(pool.get(), nullptr);
}

// ---- PoolAllocator ----

TEST(PoolAllocatorTest, EqualityAndRebind) {
  Pool a = MakePool("alloc-eq-a");
  Pool b = MakePool("alloc-eq-b");
  PoolAllocator<int> ia(a);
  PoolAllocator<double> da(ia);  // rebinding keeps the pool
  EXPECT_EQ(da.pool(), a.get());
  EXPECT_TRUE(ia == da);
  EXPECT_TRUE(ia != PoolAllocator<int>(b));
  EXPECT_FALSE(ia == PoolAllocator<int>(b.get()));
  int* p = ia.allocate(10);
  EXPECT_TRUE(InPool(p, a));
  ia.deallocate(p, 10);
  EXPECT_THROW(ia.allocate(SIZE_MAX / 2), std::bad_alloc);
}

TEST(PoolAllocatorTest, VectorLivesInPoolAndLocks) {
  Pool pool = MakePool("vec", {.manual = true});
  using Vec = std::vector<int, PoolAllocator<int>>;
  Vec v{PoolAllocator<int>(pool)};
  for (int i = 0; i < 10000; ++i) v.push_back(i);
  EXPECT_TRUE(InPool(v.data(), pool));
  EXPECT_TRUE(InPool(&v.back(), pool));
  // Growth freed the old buffers: only the current one is live.
  EXPECT_EQ(pool.stats().live_allocs, 1u);
  ASSERT_TRUE(pool.Protect().ok());
  long sum = 0;
  for (int x : v) sum += x;
  EXPECT_EQ(sum, 10000L * 9999 / 2);
  EXPECT_EXIT(v[5000] = -1, testing::KilledBySignal(SIGSEGV), "");
  // Growing a vector in a locked, non-growable pool fails as a C++ allocator must.
  Vec w{PoolAllocator<int>(pool)};
  EXPECT_THROW(w.push_back(1), std::bad_alloc);
}

TEST(PoolAllocatorTest, MapNodesInPool) {
  Pool pool = MakePool("map", {.manual = true});
  using Alloc = PoolAllocator<std::pair<const int, std::string>>;
  std::map<int, std::string, std::less<int>, Alloc> m{Alloc(pool)};
  for (int i = 0; i < 500; ++i) m.emplace(i, "v" + std::to_string(i));
  for (const auto& kv : m) ASSERT_TRUE(InPool(&kv, pool));
  m.erase(7);
  EXPECT_EQ(m.count(7), 0u);
  ASSERT_TRUE(pool.Protect().ok());
  EXPECT_EQ(m.at(499), "v499");
  // Node keys and values are on locked pages.
  EXPECT_EXIT(m.begin()->second.data()[0] = 'X', testing::KilledBySignal(SIGSEGV), "");
}

TEST(PoolAllocatorTest, BasicStringInPool) {
  Pool pool = MakePool("str", {.manual = true});
  using PString = std::basic_string<char, std::char_traits<char>, PoolAllocator<char>>;
  PString s{PoolAllocator<char>(pool)};
  s.assign("a string long enough to leave the small-string buffer behind");
  s += " and then some more";
  EXPECT_TRUE(InPool(s.data(), pool));
  // substr builds its result with a default-constructed allocator: the default pool.
  const PString sub = s.substr(0, 30);
  EXPECT_EQ(sub, "a string long enough to leave ");
  EXPECT_EQ(pmalloc_pool_of(sub.data()), pmalloc_default_pool());
  PString t = s;  // copies use the same pool
  EXPECT_TRUE(InPool(t.data(), pool));
  EXPECT_NE(t.data(), s.data());
  ASSERT_TRUE(pool.Protect().ok());
  EXPECT_EQ(s, t);
  EXPECT_EXIT(const_cast<char*>(s.data())[0] = 'A', testing::KilledBySignal(SIGSEGV), "");
}

TEST(PoolAllocatorTest, FlatHashMapInPool) {
  Pool pool = MakePool("fhm", {.manual = true});
  using Alloc = PoolAllocator<std::pair<const int, int>>;
  using Map = absl::flat_hash_map<int, int, absl::Hash<int>, std::equal_to<int>, Alloc>;
  Map m(0, Map::hasher(), Map::key_equal(), Alloc(pool));
  for (int i = 0; i < 5000; ++i) m[i] = i * 2;
  for (int i = 0; i < 5000; i += 2) m.erase(i);
  EXPECT_EQ(m.size(), 2500u);
  for (const auto& kv : m) ASSERT_TRUE(InPool(&kv, pool));
  EXPECT_EQ(pool.stats().live_allocs, 1u);  // one backing array; rehash freed the others
  ASSERT_TRUE(pool.Protect().ok());
  EXPECT_EQ(m.at(4999), 9998);
  EXPECT_EQ(m.find(4998), m.end());
  int* value = &m.find(4999)->second;
  EXPECT_EXIT(*value = 0, testing::KilledBySignal(SIGSEGV), "");
}

// ---- Lockdown (process-wide: each case runs in a forked child) ----

TEST(CppLockdown, ProtectsNonManualPools) {
  const int status = InChildStatus([] {
    absl::StatusOr<Pool> locked = Pool::Create("ld-auto");
    absl::StatusOr<Pool> manual = Pool::Create("ld-manual", {.manual = true});
    if (!locked.ok() || !manual.ok()) return 10;
    int* a = locked->New<int>(1);
    int* b = manual->New<int>(2);
    if (a == nullptr || b == nullptr) return 11;
    if (!pmalloc::Lockdown().ok()) return 12;
    if (pmalloc_is_protected(a) != 1 || locked->stats().is_protected != 1) return 13;
    if (pmalloc_is_protected(b) != 0) return 14;
    *b = 3;  // manual pools stay writable
    if (locked->New<int>(4) != nullptr || errno != EPERM) return 15;
    locked.value().release();  // live allocations: keep the pools, exit quietly
    manual.value().release();
    return 0;
  });
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(CppLockdown, WriteAfterLockdownFaults) {
  EXPECT_EXIT(
      {
        absl::StatusOr<Pool> pool = Pool::Create("ld-fault");
        int* a = pool->New<int>(1);
        if (!pmalloc::Lockdown().ok()) _exit(1);
        *a = 2;
        _exit(0);
      },
      testing::KilledBySignal(SIGSEGV), "");
}

TEST(CppLockdown, SealOption) {
  const bool has_mseal = HasMseal();
  const int status = InChildStatus([has_mseal] {
    absl::StatusOr<Pool> pool = Pool::Create("ld-seal");
    if (!pool.ok() || pool->New<int>(1) == nullptr) return 10;
    const absl::Status st = pmalloc::Lockdown({.seal = true});
    const pmalloc_stats s = pool->stats();
    pool.value().release();
    if (s.is_protected != 1) return 11;
    if (has_mseal) return st.ok() && s.is_sealed == 1 ? 0 : 12;
    return st.code() == absl::StatusCode::kUnimplemented && s.is_sealed == 0 ? 0 : 13;
  });
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
