// Run with PMALLOC_CONF=disable:true (set by CTest): pools are served by jemalloc, but pfree
// keeps its checks and fixed messages (issue 9.7).
#include <stdlib.h>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace {

TEST(Disabled, PfreeOfLiveBlocksWorks) {
  ASSERT_STREQ(getenv("PMALLOC_CONF"), "disable:true");
  pmalloc_pool* pool = pmalloc_create_pool("dis", 0, 0, 0);
  void* a = pmalloc(pool, 100);
  void* b = pzalloc(pool, 100);
  char* s = pstrdup(pool, "text");
  void* c = pmalloc_aligned(pool, 100, 64);
  ASSERT_TRUE(a && b && s && c);
  EXPECT_EQ(pmalloc_pool_of(a), nullptr);  // jemalloc memory
  pfree(pool, a);
  pfree(pool, b);
  pfree(pool, s);
  pfree(pool, c);
  void* again = pmalloc(pool, 100);  // maybe a's address: live again
  pfree(pool, again);
  EXPECT_EQ(pmalloc_destroy_pool(pool), 0);
}

TEST(Disabled, DoubleFreeAborts) {
  pmalloc_pool* pool = pmalloc_create_pool("dis-double", 0, 0, 0);
  void* p = pmalloc(pool, 64);
  pfree(pool, p);
  EXPECT_DEATH(pfree(pool, p),
               "pmalloc: pfree\\(\\): double free of 0x[0-9a-f]+ in pool 'dis-double'");
}

TEST(Disabled, WrongPoolAborts) {
  pmalloc_pool* a = pmalloc_create_pool("dis-a", 0, 0, 0);
  pmalloc_pool* b = pmalloc_create_pool("dis-b", 0, 0, 0);
  void* p = pmalloc(a, 64);
  EXPECT_DEATH(pfree(b, p), "pmalloc: pfree\\(\\): invalid pointer 0x[0-9a-f]+ for pool 'dis-b'");
  pfree(a, p);
}

TEST(Disabled, StackAndHeapPointersAbort) {
  pmalloc_pool* pool = pmalloc_create_pool("dis-bad", 0, 0, 0);
  int on_stack = 0;
  EXPECT_DEATH(pfree(pool, &on_stack),
               "pmalloc: pfree\\(\\): invalid pointer 0x[0-9a-f]+ for pool 'dis-bad'");
  void* heap = malloc(64);
  EXPECT_DEATH(pfree(pool, heap),
               "pmalloc: pfree\\(\\): invalid pointer 0x[0-9a-f]+ for pool 'dis-bad'");
  free(heap);
  void* p = pmalloc(pool, 64);
  EXPECT_DEATH(pfree(pool, static_cast<char*>(p) + 8),
               "pmalloc: pfree\\(\\): invalid pointer 0x[0-9a-f]+ for pool 'dis-bad'");
  pfree(pool, p);
}

// A destroyed pool's blocks are forgotten: the table never outlives its pools.
TEST(Disabled, DestroyedPoolBlocksAreForgotten) {
  pmalloc_pool* pool = pmalloc_create_pool("dis-gone", 0, 0, 0);
  void* p = pmalloc(pool, 64);
  pfree(pool, p);
  ASSERT_EQ(pmalloc_destroy_pool(pool), 0);
  pmalloc_pool* next = pmalloc_create_pool("dis-next", 0, 0, 0);
  EXPECT_DEATH(pfree(next, p), "pmalloc: pfree\\(\\): invalid pointer 0x[0-9a-f]+ for pool");
}

}  // namespace
