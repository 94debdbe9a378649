// Edge cases of the window's public behaviour: Contains and AreaOf at the boundaries of the
// window and of an area, before initialisation, in an area's trailing guard granule, and
// after DeleteArea. Each test runs in its own process (gtest_discover_tests), so the first
// one sees a window that does not exist yet.
#include "core/window.h"

#include <errno.h>
#include <signal.h>

#include <cstdint>

#include "core/platform.h"
#include "gtest/gtest.h"

namespace pmalloc::internal {
namespace {

uintptr_t RoundUp(uintptr_t v, uintptr_t to) { return (v + to - 1) & ~(to - 1); }
const void* Addr(uintptr_t v) { return reinterpret_cast<const void*>(v); }

// The window never dereferences an area's pool: any distinct address names one.
Pool* FakePool() {
  static char pool;
  return reinterpret_cast<Pool*>(&pool);
}

TEST(Window, NothingIsInsideBeforeInit) {
  ASSERT_EQ(Window::size(), 0u) << "something initialised the window before main";
  int local = 0;
  for (const void* p : {Addr(0), Addr(1), static_cast<const void*>(&local), Addr(UINTPTR_MAX)}) {
    EXPECT_FALSE(Window::Contains(p)) << p;
    EXPECT_EQ(Window::AreaOf(p), nullptr) << p;
  }
}

TEST(Window, SetSizeRefusedOnceTheWindowExists) {
  ASSERT_TRUE(Window::EnsureInit());
  EXPECT_FALSE(Window::SetSize(size_t{4} << 30));
}

TEST(Window, ContainsAtTheWindowEdges) {
  ASSERT_TRUE(Window::EnsureInit());
  const uintptr_t base = Window::base();
  const size_t size = Window::size();
  ASSERT_NE(size, 0u);
  EXPECT_EQ(base % kGranule, 0u);
  EXPECT_TRUE(Window::Contains(Addr(base)));
  EXPECT_TRUE(Window::Contains(Addr(base + size - 1)));
  EXPECT_FALSE(Window::Contains(Addr(base - 1)));
  EXPECT_FALSE(Window::Contains(Addr(base + size)));
  EXPECT_FALSE(Window::Contains(nullptr));
  EXPECT_FALSE(Window::Contains(Addr(UINTPTR_MAX)));
  // Inside the window but in no area: not pool memory.
  EXPECT_EQ(Window::AreaOf(Addr(base + size - 1)), nullptr);
  EXPECT_EQ(Window::AreaOf(Addr(base - 1)), nullptr);
  EXPECT_EQ(Window::AreaOf(Addr(base + size)), nullptr);
}

TEST(Window, AreaOfAtTheAreaEdges) {
  const size_t page = platform::PageSize();
  Area* a = Window::NewArea(FakePool(), 3 * page + 1, "pmalloc:window-test");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->size, 4 * page);  // rounded up to whole pages
  EXPECT_EQ((a->base - Window::base()) % kGranule, 0u);
  EXPECT_EQ(a->pool, FakePool());
  EXPECT_EQ(Window::AreaOf(Addr(a->base)), a);
  EXPECT_EQ(Window::AreaOf(Addr(a->base + a->size - 1)), a);
  EXPECT_NE(Window::AreaOf(Addr(a->base - 1)), a);
  EXPECT_EQ(Window::AreaOf(Addr(a->base + a->size)), nullptr);
  EXPECT_TRUE(Window::Contains(Addr(a->base + a->size)));
  // The area is writable memory, first byte to last.
  *reinterpret_cast<volatile char*>(a->base) = 1;
  *reinterpret_cast<volatile char*>(a->base + a->size - 1) = 1;
  EXPECT_TRUE(Window::DeleteArea(a));
}

TEST(Window, GranuleSizedAreaIsFollowedByItsGuard) {
  Area* a = Window::NewArea(FakePool(), kGranule, "pmalloc:window-test");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->size, kGranule);
  EXPECT_EQ(Window::AreaOf(Addr(a->base + kGranule - 1)), a);
  EXPECT_EQ(Window::AreaOf(Addr(a->base + kGranule)), nullptr);
  EXPECT_EQ(Window::AreaOf(Addr(a->base + 2 * kGranule - 1)), nullptr);
}

TEST(Window, GuardGranuleIsInNoAreaAndFaults) {
  const size_t page = platform::PageSize();
  Area* a = Window::NewArea(FakePool(), page, "pmalloc:window-test");
  Area* b = Window::NewArea(FakePool(), page, "pmalloc:window-test");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // At least one whole unmapped granule between the end of one area and the next.
  for (auto [lo, hi] : {std::pair{a, b}, std::pair{b, a}}) {
    if (lo->base > hi->base) continue;
    EXPECT_GE(hi->base, RoundUp(lo->base + lo->size, kGranule) + kGranule);
  }
  const uintptr_t guard_end = RoundUp(a->base + a->size, kGranule) + kGranule;
  for (uintptr_t p = a->base + a->size; p < guard_end; p += page) {
    EXPECT_EQ(Window::AreaOf(Addr(p)), nullptr) << std::hex << p;
    EXPECT_TRUE(Window::Contains(Addr(p))) << std::hex << p;
  }
  char* const past_end = reinterpret_cast<char*>(a->base + a->size);
  EXPECT_EXIT(*reinterpret_cast<volatile char*>(past_end) = 1, testing::KilledBySignal(SIGSEGV),
              "");
  char* const guard_last = reinterpret_cast<char*>(guard_end - 1);
  EXPECT_EXIT(*reinterpret_cast<volatile char*>(guard_last) = 1, testing::KilledBySignal(SIGSEGV),
              "");
}

TEST(Window, DeletedAreaLeavesTheTableAndFaults) {
  const size_t page = platform::PageSize();
  Area* a = Window::NewArea(FakePool(), 2 * page, "pmalloc:window-test");
  ASSERT_NE(a, nullptr);
  const uintptr_t base = a->base;
  const size_t size = a->size;
  *reinterpret_cast<volatile char*>(base) = 1;
  ASSERT_TRUE(Window::DeleteArea(a));
  EXPECT_EQ(Window::AreaOf(Addr(base)), nullptr);
  EXPECT_EQ(Window::AreaOf(Addr(base + size - 1)), nullptr);
  EXPECT_TRUE(Window::Contains(Addr(base)));  // the address stays reserved
  EXPECT_EXIT(*reinterpret_cast<volatile char*>(base) = 1, testing::KilledBySignal(SIGSEGV), "");
  // A neighbour created afterwards is found, and the deleted range still is not.
  Area* b = Window::NewArea(FakePool(), page, "pmalloc:window-test");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(Window::AreaOf(Addr(b->base)), b);
  if (b->base != base) {
    EXPECT_EQ(Window::AreaOf(Addr(base)), nullptr);
  }
}

TEST(Window, NewAreaRefusesZeroAndOversizedRequests) {
  ASSERT_TRUE(Window::EnsureInit());
  errno = 0;
  EXPECT_EQ(Window::NewArea(FakePool(), 0, "pmalloc:window-test"), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(Window::NewArea(FakePool(), Window::size() / 2 + 1, "pmalloc:window-test"), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

}  // namespace
}  // namespace pmalloc::internal
