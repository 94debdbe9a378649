// Run with PMALLOC_CONF=disable:true (set by CTest): lockable allocations come from the
// normal heap and every compat function still works on them.
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "gtest/gtest.h"
#include "pmalloc/compat/cache.h"
#include "pmalloc/compat/mm.h"
#include "pmalloc/compat/slab.h"

namespace {

int knob __ro_after_init = 1;

// PMALLOC_CONF is read by core/; under disable:true pools hand out jemalloc memory, which
// compat's heap path later passes to free(). That is jemalloc's only through libpmalloc's
// malloc face (preload/), which sanitizer builds leave out: there is nothing to test then.
bool LibpmallocHasMallocFace() {
  Dl_info mine{}, face{};
  void* m = dlsym(RTLD_DEFAULT, "malloc");
  return dladdr(reinterpret_cast<void*>(&pmalloc_kfree), &mine) != 0 && m != nullptr &&
         dladdr(m, &face) != 0 && mine.dli_fbase == face.dli_fbase;
}

TEST(CompatDisabled, LockableAllocationsUseTheHeap) {
  ASSERT_STREQ(getenv("PMALLOC_CONF"), "disable:true");
  if (!LibpmallocHasMallocFace()) {
    GTEST_SKIP() << "libpmalloc has no malloc face (preload layer), so no PMALLOC_CONF: "
                    "disable:true cannot be tested in this build";
  }
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
  knob = 2;  // lockdown is a no-op under disable:true: statics stay writable too
  EXPECT_EQ(knob, 2);
}

}  // namespace
