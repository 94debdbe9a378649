// pmalloc's own once-written state (core/ro_state.h: the libc face's jemalloc entry table,
// the window's bounds, the configuration, the chained signal actions, the lockdown hook) is
// read-only after lockdown: a write to any page of libpmalloc's pmalloc_ro section faults,
// while malloc/free, sigaction for a signal pmalloc chains, fork and a second lockdown still
// work. Each test locks down in a forked child (lockdown is for the life of a process); a
// write is tried in a grandchild, which must die of SIGSEGV.
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <functional>

#include "gtest/gtest.h"
#include "in_child.h"
#include "pmalloc/pmalloc.h"
#include "proc_mem_write.h"

namespace {

using pmalloc_test::InChildStatus;
using pmalloc_test::ProcMemWrite;

bool DiesOfSegv(const std::function<void()>& fn) {
  const int status = InChildStatus([&] {
    fn();
    return 0;
  });
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

// [start, end) of libpmalloc's pmalloc_ro section, from its section headers.
bool Section(uintptr_t* start, uintptr_t* end) {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&pmalloc_lockdown), &info) == 0) return false;
  const int fd = open(info.dli_fname, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  fstat(fd, &st);
  void* map = mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return false;
  const auto* base = static_cast<const char*>(map);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
  const char* names = base + sh[eh->e_shstrndx].sh_offset;
  bool found = false;
  for (int i = 0; i < eh->e_shnum; ++i) {
    if (strcmp(names + sh[i].sh_name, "pmalloc_ro") != 0) continue;
    *start = reinterpret_cast<uintptr_t>(info.dli_fbase) + sh[i].sh_addr;
    *end = *start + sh[i].sh_size;
    found = true;
  }
  munmap(map, st.st_size);
  return found;
}

class RoState : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Section(&start_, &end_));
    ASSERT_EQ(start_ % 4096, 0u);
    ASSERT_EQ(end_ % 4096, 0u);
    ASSERT_GT(end_, start_);
  }
  uintptr_t start_ = 0;
  uintptr_t end_ = 0;
};

// Writes the byte back unchanged: only the protection can make it fail.
void Touch(uintptr_t addr) {
  volatile char* p = reinterpret_cast<volatile char*>(addr);
  *p = *p;
}

TEST_F(RoState, EveryPageIsWritableBeforeLockdown) {
  EXPECT_EQ(InChildStatus([&] {
              for (uintptr_t a = start_; a < end_; a += 4096) Touch(a + 8);
              return 0;
            }),
            0);
}

TEST_F(RoState, EveryPageFaultsAfterLockdown) {
  EXPECT_EQ(InChildStatus([&] {
              pmalloc_pool* pool = pmalloc_create_pool("ro-state", 0, 0, 0);
              if (pool == nullptr || pmalloc(pool, 64) == nullptr) return 1;
              if (pmalloc_lockdown(0) != 0) return 2;
              for (uintptr_t a = start_; a < end_; a += 4096) {
                if (!DiesOfSegv([&] { Touch(a + 8); })) return 3;
              }
              // malloc and free (through the entry table) still work.
              for (int i = 0; i < 1000; ++i) {
                void* p = malloc(16 + i);
                if (p == nullptr) return 4;
                memset(p, 1, 16 + i);
                free(p);
              }
              return 0;
            }),
            0);
}

volatile sig_atomic_t handled = 0;
void OnSegv(int) {
  handled = 1;
  _exit(42);
}

// A program's SIGSEGV handler installed after lockdown is recorded (the chained action lives
// in the read-only page: it is replaced by a copy) and reached for a fault that is not
// pmalloc's; sigaction reports it back.
TEST_F(RoState, SigactionAfterLockdownWorks) {
  const int status = InChildStatus([&] {
    pmalloc_pool* pool = pmalloc_create_pool("ro-state", 0, 0, 0);
    if (pool == nullptr || pmalloc(pool, 64) == nullptr) return 1;
    if (pmalloc_lockdown(0) != 0) return 2;
    struct sigaction act = {};
    act.sa_handler = OnSegv;
    sigemptyset(&act.sa_mask);
    if (sigaction(SIGSEGV, &act, nullptr) != 0) return 3;
    struct sigaction now = {};
    if (sigaction(SIGSEGV, nullptr, &now) != 0 || now.sa_handler != OnSegv) return 4;
    // Still read-only: the write faults, and the fault (not in a pool) reaches the handler.
    const int touched = InChildStatus([&] {
      Touch(start_);
      return 0;
    });
    if (!WIFEXITED(touched) || WEXITSTATUS(touched) != 42) return 5;
    void* page = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *static_cast<volatile char*>(page) = 1;  // not pmalloc's: the program's handler
    return 6;
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 42);
}

bool HasMseal() {
  void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return syscall(462, p, 4096, 0) == 0 || errno != ENOSYS;  // page left mapped on purpose
}

TEST_F(RoState, SigactionAfterSealedLockdownFailsWithEperm) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizer builds have no libc face: sigaction goes to the kernel, and "
                  "pmalloc keeps no chained action to refuse";
#endif
  if (!HasMseal()) GTEST_SKIP() << "no mseal(2)";
  EXPECT_EQ(InChildStatus([&] {
              if (pmalloc_lockdown(PMALLOC_LOCKDOWN_SEAL) != 0) return 1;
              struct sigaction act = {};
              act.sa_handler = OnSegv;
              sigemptyset(&act.sa_mask);
              if (sigaction(SIGSEGV, &act, nullptr) != -1 || errno != EPERM) return 2;
              struct sigaction now = {};
              if (sigaction(SIGSEGV, nullptr, &now) != 0 || now.sa_handler == OnSegv) return 3;
              if (!DiesOfSegv([&] { Touch(start_); })) return 4;
              void* p = malloc(100);
              free(p);
              return p != nullptr ? 0 : 5;
            }),
            0);
}

TEST_F(RoState, ForkAndSecondLockdownAfterLockdown) {
  EXPECT_EQ(InChildStatus([&] {
              pmalloc_pool* pool = pmalloc_create_pool("ro-state", 0, 0, 0);
              if (pool == nullptr || pmalloc(pool, 64) == nullptr) return 1;
              if (pmalloc_lockdown(0) != 0) return 2;
              if (pmalloc_lockdown(0) != 0) return 3;
              const int child = InChildStatus([&] {
                void* p = malloc(32);
                free(p);
                if (pmalloc_lockdown(0) != 0) return 1;
                return DiesOfSegv([&] { Touch(start_); }) ? 0 : 2;
              });
              if (!WIFEXITED(child) || WEXITSTATUS(child) != 0) return 4;
              // A pool created after lockdown (no new window state) and another lockdown.
              pmalloc_pool* late = pmalloc_create_pool("ro-late", 0, 0, 0);
              if (late == nullptr || pmalloc(late, 64) == nullptr) return 5;
              return pmalloc_lockdown(0) == 0 ? 0 : 6;
            }),
            0);
}

// The window is reserved by the first pool: a lockdown before any pool exists makes the
// first pool write the window's bounds through a copy of the read-only page.
TEST_F(RoState, FirstPoolAfterLockdown) {
  EXPECT_EQ(InChildStatus([&] {
              if (pmalloc_lockdown(0) != 0) return 1;
              pmalloc_pool* pool = pmalloc_create_pool("ro-first", 0, 0, 0);
              if (pool == nullptr) return 2;
              int* p = static_cast<int*>(pmalloc(pool, sizeof(int)));
              if (p == nullptr || pmalloc_is_protected(p) != 0) return 3;
              *p = 7;
              if (pmalloc_lockdown(0) != 0 || pmalloc_is_protected(p) != 1) return 4;
              return DiesOfSegv([&] { *p = 8; }) && DiesOfSegv([&] { Touch(start_); }) ? 0 : 5;
            }),
            0);
}

// A write through /proc/self/mem (what a debugger or an attacker with a file-write primitive
// uses, FOLL_FORCE) lands in the section before lockdown and is refused with EIO after it,
// as for a protected pool: the locked section is a read-only shared mapping of a memfd, and
// so is every copy an RoWrite moves over it after lockdown (here the first pool's window
// bounds).
bool ProcMemRefused(uintptr_t start, uintptr_t end) {
  for (uintptr_t a = start; a < end; a += 4096) {
    const char byte = *reinterpret_cast<const volatile char*>(a + 8);
    if (ProcMemWrite(reinterpret_cast<void*>(a + 8), &byte, 1) != -1 || errno != EIO) {
      return false;
    }
  }
  return true;
}

TEST_F(RoState, ProcMemWritesRefusedAfterLockdown) {
  EXPECT_EQ(InChildStatus([&] {
              const char byte = *reinterpret_cast<const volatile char*>(start_ + 8);
              if (ProcMemWrite(reinterpret_cast<void*>(start_ + 8), &byte, 1) != 1) return 1;
              if (pmalloc_lockdown(0) != 0) return 2;
              if (!ProcMemRefused(start_, end_)) return 3;
              pmalloc_pool* pool = pmalloc_create_pool("ro-procmem", 0, 0, 0);
              if (pool == nullptr || pmalloc(pool, 64) == nullptr) return 4;  // an RoWrite
              if (!ProcMemRefused(start_, end_)) return 5;
              return DiesOfSegv([&] { Touch(start_); }) ? 0 : 6;
            }),
            0);
}

}  // namespace
