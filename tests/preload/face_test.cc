// The libc face (preload/) as seen by a program linked with -lpmalloc: glibc semantics of
// every entry point (errno, overflow, alignment, realloc rules), and that jemalloc, not
// glibc, serves untagged memory. Built with -fno-builtin so the compiler keeps every call.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

extern "C" void* __libc_malloc(size_t);
extern "C" void __libc_free(void*);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void* __libc_memalign(size_t, size_t);
extern "C" void* __libc_valloc(size_t);
extern "C" void* __libc_pvalloc(size_t);

namespace {

// Keeps the optimiser from folding sizes known at compile time.
size_t Opaque(size_t v) {
  volatile size_t x = v;
  return x;
}

bool Aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

// The object that defines `sym` in this process.
std::string Definer(const char* sym) {
  Dl_info info{};
  void* addr = dlsym(RTLD_DEFAULT, sym);
  if (addr == nullptr || dladdr(addr, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

TEST(Face, EntryPointsResolveToPmalloc) {
  for (const char* sym :
       {"malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
        "memalign", "valloc", "pvalloc", "malloc_usable_size", "__libc_malloc", "__libc_memalign",
        "mallinfo2", "malloc_trim", "_Znwm", "_ZdlPvm", "_ZnwmSt11align_val_t"}) {
    EXPECT_NE(Definer(sym).find("libpmalloc"), std::string::npos) << sym;
  }
}

TEST(Face, MallocZeroIsUniqueAndFreeable) {
  void* a = malloc(Opaque(0));
  void* b = malloc(Opaque(0));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  free(a);
  free(b);
  free(nullptr);
}

TEST(Face, MallocHugeFailsWithEnomem) {
  errno = 0;
  EXPECT_EQ(malloc(Opaque(SIZE_MAX - 4096)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Face, CallocZeroesAndChecksOverflow) {
  unsigned char* p = static_cast<unsigned char*>(calloc(Opaque(1000), 8));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 8000; ++i) ASSERT_EQ(p[i], 0);
  free(p);
  errno = 0;
  EXPECT_EQ(calloc(Opaque(SIZE_MAX / 2), 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* z = calloc(Opaque(0), 16);
  EXPECT_NE(z, nullptr);
  free(z);
}

TEST(Face, ReallocSemantics) {
  char* p = static_cast<char*>(realloc(nullptr, Opaque(10)));  // malloc
  ASSERT_NE(p, nullptr);
  memcpy(p, "123456789", 10);
  p = static_cast<char*>(realloc(p, Opaque(100000)));
  ASSERT_NE(p, nullptr);
  EXPECT_STREQ(p, "123456789");
  p = static_cast<char*>(realloc(p, Opaque(5)));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(memcmp(p, "12345", 5), 0);
  errno = 0;
  EXPECT_EQ(realloc(p, Opaque(SIZE_MAX - 4096)), nullptr);  // fails, p untouched
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(memcmp(p, "12345", 5), 0);
  errno = 0;
  EXPECT_EQ(realloc(p, Opaque(size_t{1} << 50)), nullptr);  // fits size classes, not memory
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(memcmp(p, "12345", 5), 0);
  EXPECT_EQ(realloc(p, Opaque(0)), nullptr);  // glibc: frees, returns NULL
  void* q = realloc(nullptr, Opaque(0));      // malloc(0)
  EXPECT_NE(q, nullptr);
  free(q);
}

// GCC cannot know that a failed reallocarray leaves the block alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuse-after-free"
TEST(Face, ReallocarrayChecksOverflow) {
  errno = 0;
  EXPECT_EQ(reallocarray(nullptr, Opaque(SIZE_MAX / 4), 8), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  int* p = static_cast<int*>(reallocarray(nullptr, Opaque(10), sizeof(int)));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 10; ++i) p[i] = i;
  errno = 0;
  int* q = static_cast<int*>(reallocarray(p, Opaque(SIZE_MAX / 2), sizeof(int)));
  EXPECT_EQ(q, nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(p[9], 9);  // untouched on failure
  p = static_cast<int*>(reallocarray(p, Opaque(1000), sizeof(int)));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[9], 9);
  free(p);
}
#pragma GCC diagnostic pop

TEST(Face, PosixMemalign) {
  void* p = nullptr;
  errno = 1234;
  EXPECT_EQ(posix_memalign(&p, Opaque(3), 10), EINVAL);
  EXPECT_EQ(posix_memalign(&p, Opaque(0), 10), EINVAL);
  EXPECT_EQ(posix_memalign(&p, Opaque(4), 10), EINVAL);   // not a multiple of sizeof(void*)
  EXPECT_EQ(posix_memalign(&p, Opaque(24), 10), EINVAL);  // 24 / 8 = 3: not a power of two
  EXPECT_EQ(p, nullptr);
  for (size_t a : {8, 16, 64, 4096, 1 << 20}) {
    ASSERT_EQ(posix_memalign(&p, Opaque(a), 100), 0) << a;
    EXPECT_TRUE(Aligned(p, a)) << a;
    free(p);
  }
  ASSERT_EQ(posix_memalign(&p, Opaque(64), 0), 0);  // size 0: a unique pointer
  EXPECT_NE(p, nullptr);
  free(p);
  EXPECT_EQ(posix_memalign(&p, Opaque(64), SIZE_MAX - 4096), ENOMEM);
  EXPECT_EQ(errno, 1234);  // errno left alone
}

TEST(Face, AlignedAlloc) {
  errno = 0;
  EXPECT_EQ(aligned_alloc(Opaque(3), 16), nullptr);  // glibc >= 2.38: EINVAL
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(aligned_alloc(Opaque(0), 16), nullptr);
  EXPECT_EQ(errno, EINVAL);
  void* p = aligned_alloc(Opaque(256), 100);  // size need not be a multiple (C17 DR 460)
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(Aligned(p, 256));
  free(p);
}

// Alignments up to 16 are honoured for small sizes too: jemalloc's malloc of fewer than 16
// bytes is only 8-aligned, so they cannot be plain malloc.
TEST(Face, SmallAlignedRequestsAreAligned) {
  for (size_t size = 0; size <= 16; ++size) {
    for (size_t align : {size_t{8}, size_t{16}}) {
      std::vector<void*> blocks;
      for (int i = 0; i < 8; ++i) {  // several, so that one 8-aligned slot would show
        void* p = aligned_alloc(Opaque(align), Opaque(size));
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(Aligned(p, align)) << "aligned_alloc(" << align << ", " << size << ")";
        blocks.push_back(p);
        void* q = nullptr;
        ASSERT_EQ(posix_memalign(&q, Opaque(align), Opaque(size)), 0);
        EXPECT_TRUE(Aligned(q, align)) << "posix_memalign(" << align << ", " << size << ")";
        blocks.push_back(q);
        void* r = memalign(Opaque(align), Opaque(size));
        ASSERT_NE(r, nullptr);
        EXPECT_TRUE(Aligned(r, align)) << "memalign(" << align << ", " << size << ")";
        blocks.push_back(r);
      }
      for (void* b : blocks) free(b);
    }
  }
  void* p = memalign(Opaque(0), 10);  // glibc: malloc
  ASSERT_NE(p, nullptr);
  free(p);
}

TEST(Face, MemallocValloc) {
  void* p = memalign(Opaque(48), 10);  // glibc rounds up to 64
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(Aligned(p, 64));
  free(p);
  errno = 0;
  EXPECT_EQ(memalign(Opaque(SIZE_MAX / 2 + 2), 10), nullptr);
  EXPECT_EQ(errno, EINVAL);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  p = valloc(Opaque(10));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(Aligned(p, page));
  free(p);
  p = pvalloc(Opaque(10));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(Aligned(p, page));
  EXPECT_GE(malloc_usable_size(p), page);
  free(p);
  errno = 0;
  EXPECT_EQ(pvalloc(Opaque(SIZE_MAX - 10)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Face, LibcInternalNames) {
  void* p = __libc_malloc(Opaque(10));
  p = __libc_realloc(p, Opaque(1000));
  ASSERT_NE(p, nullptr);
  __libc_free(p);
  p = __libc_calloc(Opaque(4), 4);
  ASSERT_NE(p, nullptr);
  __libc_free(p);
  p = __libc_memalign(Opaque(128), 4);
  EXPECT_TRUE(Aligned(p, 128));
  __libc_free(p);
  __libc_free(__libc_valloc(Opaque(1)));
  __libc_free(__libc_pvalloc(Opaque(1)));
}

TEST(Face, UsableSize) {
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
  void* p = malloc(Opaque(100));
  EXPECT_GE(malloc_usable_size(p), 100u);
  free(p);
}

TEST(Face, MallinfoTrimMalloptStats) {
  const struct mallinfo2 before = mallinfo2();
  void* big = malloc(Opaque(8 << 20));
  memset(big, 1, 8 << 20);
  const struct mallinfo2 during = mallinfo2();
  EXPECT_GE(during.uordblks, before.uordblks + (8 << 20));
  EXPECT_GE(during.arena, during.uordblks - during.hblkhd);
  free(big);
  EXPECT_EQ(malloc_trim(0), 1);
  EXPECT_EQ(mallopt(M_ARENA_MAX, 1), 1);
  malloc_stats();  // prints on stderr; must not crash
}

TEST(Face, OperatorNewForms) {
  void* p = ::operator new(Opaque(10));
  ::operator delete(p);
  p = ::operator new[](Opaque(10));
  ::operator delete[](p);
  p = ::operator new(Opaque(10), std::nothrow);
  ::operator delete(p, std::nothrow);
  p = ::operator new[](Opaque(10), std::nothrow);
  ::operator delete[](p, std::nothrow);
  p = ::operator new(Opaque(10));
  ::operator delete(p, 10);
  p = ::operator new[](Opaque(10));
  ::operator delete[](p, 10);
  for (size_t a : {32, 64, 4096, 1 << 16}) {
    const std::align_val_t al{a};
    p = ::operator new(Opaque(10), al);
    EXPECT_TRUE(Aligned(p, a));
    ::operator delete(p, al);
    p = ::operator new[](Opaque(10), al);
    EXPECT_TRUE(Aligned(p, a));
    ::operator delete[](p, al);
    p = ::operator new(Opaque(10), al, std::nothrow);
    EXPECT_TRUE(Aligned(p, a));
    ::operator delete(p, al, std::nothrow);
    p = ::operator new[](Opaque(10), al, std::nothrow);
    EXPECT_TRUE(Aligned(p, a));
    ::operator delete[](p, al, std::nothrow);
    p = ::operator new(Opaque(10), al);
    ::operator delete(p, 10, al);
    p = ::operator new[](Opaque(0), al);
    ::operator delete[](p, 0, al);
  }
  ::operator delete(nullptr, 10);
  ::operator delete (nullptr, 10, std::align_val_t{64});
}

// operator new(0, al) is a block of jemalloc's size class for (1 byte, al): at least `al`
// bytes. jemalloc 5.3's own sized aligned delete classifies (0, al) as its smallest class
// (8 bytes) and files the block there, so later small mallocs got it back while jemalloc
// still counted it in its real class: overlapping blocks, a corrupted heap (what made
// FaceModelTest crash or see malloc_usable_size() below the request, 1 run in 20).
TEST(Face, SizedAlignedDeleteOfZeroBytesReturnsTheBlockToItsClass) {
  for (size_t a : {16, 32, 64, 1024, 4096}) {
    const std::align_val_t al{a};
    char* p = static_cast<char*>(::operator new(Opaque(0), al));
    const size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, a);
    ::operator delete(p, Opaque(0), al);
    std::vector<void*> small;
    for (int i = 0; i < 64; ++i) {
      char* q = static_cast<char*>(malloc(Opaque(8)));
      ASSERT_NE(q, nullptr);
      EXPECT_FALSE(q >= p && q < p + usable)
          << "align " << a << ": malloc(8) #" << i << " is inside the deleted block";
      small.push_back(q);
    }
    for (void* q : small) free(q);
  }
}

TEST(Face, NewThrowsNothrowReturnsNull) {
  EXPECT_THROW((void)::operator new(Opaque(SIZE_MAX - 4096)), std::bad_alloc);
  EXPECT_THROW((void)::operator new[](Opaque(SIZE_MAX - 4096)), std::bad_alloc);
  EXPECT_THROW((void)::operator new (Opaque(SIZE_MAX - 4096), std::align_val_t{64}),
               std::bad_alloc);
  EXPECT_EQ(::operator new(Opaque(SIZE_MAX - 4096), std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](Opaque(SIZE_MAX - 4096), std::align_val_t{64}, std::nothrow), nullptr);
}

int handler_calls = 0;
void CountingHandler() {
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}

TEST(Face, NewCallsNewHandlerUntilItGivesUp) {
  handler_calls = 0;
  std::set_new_handler(CountingHandler);
  EXPECT_THROW((void)::operator new(Opaque(SIZE_MAX - 4096)), std::bad_alloc);
  EXPECT_EQ(handler_calls, 3);
  handler_calls = 0;
  std::set_new_handler(CountingHandler);
  EXPECT_EQ(::operator new(Opaque(SIZE_MAX - 4096), std::nothrow), nullptr);
  EXPECT_EQ(handler_calls, 3);
}

TEST(Face, UntaggedMemoryIsNotPoolMemory) {
  void* p = malloc(Opaque(64));
  EXPECT_EQ(pmalloc_pool_of(p), nullptr);
  free(p);
}

}  // namespace
