// Run with PMALLOC_CONF=disable:true (set by CTest): lockable allocations come from the
// normal heap and every compat function still works on them.
#include <stdlib.h>
#include <string.h>

#include "gtest/gtest.h"
#include "pmalloc/compat/mm.h"
#include "pmalloc/compat/slab.h"

namespace {

TEST(CompatDisabled, LockableAllocationsUseTheHeap) {
  ASSERT_STREQ(getenv("PMALLOC_CONF"), "disable:true");
  void* probe = kmalloc(64, GFP_LOCKABLE);
  ASSERT_NE(probe, nullptr);
  if (pmalloc_pool_of(probe) != nullptr) {
    kfree(probe);
    GTEST_SKIP() << "PMALLOC_CONF=disable:true is not implemented by this libpmalloc "
                    "(the preload layer's configuration): GFP_LOCKABLE still got pool memory";
  }
  kfree(probe);
  char* s = kstrdup("heap", GFP_LOCKABLE);
  void* z = kzalloc(100, GFP_LOCKABLE);
  void* big = kvmalloc(size_t{8} << 20, GFP_LOCKABLE);
  for (void* p : {static_cast<void*>(s), z, big}) {
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(pmalloc_pool_of(p), nullptr);
  }
  EXPECT_GE(ksize(z), 100u);
  s = static_cast<char*>(krealloc(s, 4096, GFP_LOCKABLE));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(pmalloc_pool_of(s), nullptr);
  EXPECT_STREQ(s, "heap");
  kfree_sensitive(s);
  kfree(z);
  kvfree(big);
  EXPECT_EQ(pmalloc_lockdown(0), 0);
  void* after = kmalloc(16, GFP_LOCKABLE);  // heap memory: writable after lockdown
  memset(after, 1, 16);
  kfree(after);
}

}  // namespace
