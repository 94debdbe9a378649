// pmalloc::Write, pmalloc::WriteRare<T> and Pool::Write/MakeReadOnly (pmalloc.hpp) over a
// write-rare pool.
#include <signal.h>

#include <cstdint>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.hpp"

namespace {

struct Table {
  int entries;
};

struct Root {
  pmalloc::WriteRare<const Table*> table;
  pmalloc::WriteRare<uint64_t> generation;
  uint32_t flags;
};

static_assert(sizeof(pmalloc::WriteRare<uint64_t>) == sizeof(uint64_t));
static_assert(std::is_trivially_copyable_v<pmalloc::WriteRare<const Table*>>);

TEST(WriteRareCpp, SetAndWriteAfterProtect) {
  auto pool = pmalloc::Pool::Create("wr-cpp", {.manual = true, .write_rare = true});
  ASSERT_TRUE(pool.ok()) << pool.status();
  Table* first = pool->New<Table>(Table{1});
  Table* second = pool->New<Table>(Table{2});
  Root* root = pool->New<Root>();
  ASSERT_NE(root, nullptr);
  ASSERT_TRUE(root->table.Set(first).ok());  // before protect: a plain store
  ASSERT_TRUE(pool->Protect().ok());

  ASSERT_TRUE(root->table.Set(second).ok());
  EXPECT_EQ(root->table->entries, 2);
  ASSERT_TRUE(root->generation.Set(7).ok());
  EXPECT_EQ(root->generation.get(), 7u);
  ASSERT_TRUE(pool->Write(&root->flags, uint32_t{0x11}).ok());
  EXPECT_EQ(root->flags, 0x11u);
  EXPECT_EQ(pmalloc_is_protected(root), 1);
  EXPECT_EXIT(*const_cast<volatile uint32_t*>(&root->flags) = 1, testing::KilledBySignal(SIGSEGV),
              "");

  uint32_t on_stack = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(pmalloc::Write(&on_stack, uint32_t{1})));
  EXPECT_TRUE(absl::IsInvalidArgument(pool->Write(&on_stack, uint32_t{1})));

  ASSERT_TRUE(pool->MakeReadOnly().ok());
  EXPECT_TRUE(absl::IsPermissionDenied(root->generation.Set(8)));
  EXPECT_TRUE(absl::IsPermissionDenied(root->table.Set(first)));
  EXPECT_EQ(root->generation.get(), 7u);
  (void)pool->release();  // live allocations: left to the process
}

TEST(WriteRareCpp, PlainPoolRefusesWrite) {
  auto pool = pmalloc::Pool::Create("wr-cpp-plain", {.manual = true});
  ASSERT_TRUE(pool.ok());
  auto* v = pool->New<uint64_t>(0);
  ASSERT_TRUE(pool->Protect().ok());
  EXPECT_TRUE(absl::IsInvalidArgument(pool->Write(v, uint64_t{1})));
  EXPECT_TRUE(absl::IsInvalidArgument(pool->MakeReadOnly()));
  (void)pool->release();
}

}  // namespace
