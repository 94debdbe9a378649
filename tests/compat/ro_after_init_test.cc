// __ro_after_init: layout (whole pages, nothing else on them), protection by fault after
// pmalloc_lockdown() in the executable (two translation units) and in a shared object,
// sealing, neighbours that stay writable, and the refusal of a range that is not whole
// pages.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pmalloc/compat/cache.h"

extern "C" {
int ro_module_get(void);
void ro_module_set(int v);
const void* ro_module_address(void);
void ro_module_plain_set(int v);
const void* ro_module_plain_address(void);
void second_set(long v);
long second_get(void);
const void* second_address(void);
extern long second_plain;
}

namespace {

struct Config {
  int limit;
  char name[32];
};

int plain_before = 1;
Config cfg __ro_after_init = {10, "init"};
int ro_int __ro_after_init = 5;
char big[3 * 4096 + 100] __ro_after_init;  // spans pages
// A page of initialised data that nothing reads before lockdown: it may still be only in
// the executable file (not in the page tables) when lockdown copies it.
alignas(4096) char file_text[4096] __ro_after_init = "bytes from the executable file";
int plain_after = 2;
int plain_bss;

uintptr_t Page() { return static_cast<uintptr_t>(sysconf(_SC_PAGESIZE)); }
uintptr_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }
uintptr_t Start() { return Addr(__start_pmalloc_ro_after_init); }
uintptr_t Stop() { return Addr(__stop_pmalloc_ro_after_init); }
bool InSection(const void* p) { return Addr(p) >= Start() && Addr(p) < Stop(); }

// Locks down, then says so on stderr: a death test matching "locked down" proves the
// fault came after a successful lockdown.
void LockDown(unsigned flags = 0) {
  if (pmalloc_lockdown(flags) != 0) {
    fprintf(stderr, "lockdown failed: errno %d\n", errno);
    _exit(2);
  }
  fprintf(stderr, "locked down\n");
}

bool HasMseal() {
  void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const bool ok = syscall(462, p, 4096, 0) == 0 || errno != ENOSYS;
  return ok;  // the page is left mapped (maybe sealed) on purpose
}

TEST(RoAfterInit, SectionIsWholePagesHoldingOnlyProtectedVariables) {
  ASSERT_NE(Start(), 0u);
  EXPECT_EQ(Start() % Page(), 0u);
  EXPECT_EQ(Stop() % Page(), 0u);
  for (const void* p : {static_cast<const void*>(&cfg), static_cast<const void*>(&ro_int),
                        static_cast<const void*>(big),
                        static_cast<const void*>(big + sizeof(big) - 1), second_address()}) {
    EXPECT_TRUE(InSection(p)) << p;
  }
  for (const void* p :
       {static_cast<const void*>(&plain_before), static_cast<const void*>(&plain_after),
        static_cast<const void*>(&plain_bss), static_cast<const void*>(&second_plain)}) {
    EXPECT_FALSE(InSection(p)) << p;
  }
  // The shared object's variable is in its own module, not in the executable's section.
  EXPECT_FALSE(InSection(ro_module_address()));
  EXPECT_EQ(Addr(ro_module_address()) % Page(), 0u);  // first (only) variable of its page
  EXPECT_FALSE(InSection(ro_module_plain_address()));
  EXPECT_NE(Addr(ro_module_plain_address()) / Page(), Addr(ro_module_address()) / Page());
}

TEST(RoAfterInit, WritableBeforeLockdown) {
  EXPECT_EQ(cfg.limit, 10);
  EXPECT_STREQ(cfg.name, "init");
  cfg.limit = 11;  // start-up code may still write
  big[sizeof(big) - 1] = 'z';
  second_set(2);
  ro_module_set(43);
  EXPECT_EQ(cfg.limit, 11);
  EXPECT_EQ(second_get(), 2);
  EXPECT_EQ(ro_module_get(), 43);
  cfg.limit = 10;
}

TEST(RoAfterInit, WriteAfterLockdownFaults) {
  EXPECT_EXIT(
      {
        LockDown();
        cfg.limit = 1;
      },
      testing::KilledBySignal(SIGSEGV), "locked down");
  EXPECT_EXIT(
      {
        LockDown();
        ro_int = 1;
      },
      testing::KilledBySignal(SIGSEGV), "locked down");
  EXPECT_EXIT(
      {
        LockDown();
        big[0] = 1;
      },
      testing::KilledBySignal(SIGSEGV), "locked down");
  EXPECT_EXIT(
      {
        LockDown();
        big[sizeof(big) - 1] = 1;
      },
      testing::KilledBySignal(SIGSEGV), "locked down");
  EXPECT_EXIT(
      {
        LockDown();
        second_set(9);
      },
      testing::KilledBySignal(SIGSEGV), "locked down");
}

// The fault report names the range: its state, the module that registered it, the offset.
TEST(RoAfterInit, WriteAfterLockdownIsReported) {
  const std::string at = "at 0x[0-9a-f]+ \\(offset " + std::to_string(Addr(&ro_int) - Start()) +
                         " of 0x[0-9a-f]+, " + std::to_string(Stop() - Start()) + " bytes\\)";
  EXPECT_EXIT(
      {
        LockDown();
        ro_int = 1;
      },
      testing::KilledBySignal(SIGSEGV),
      "locked down\n(.*\n)?pmalloc: write to protected static range of "
      "'[^']*compat_ro_after_init_test' " +
          at + " by ");
  EXPECT_EXIT(
      {
        LockDown();
        ro_module_set(1);
      },
      testing::KilledBySignal(SIGSEGV),
      "pmalloc: write to protected static range of '[^']*libcompat_ro_module.so' at 0x");
  if (HasMseal()) {
    EXPECT_EXIT(
        {
          LockDown(PMALLOC_LOCKDOWN_SEAL);
          ro_int = 1;
        },
        testing::KilledBySignal(SIGSEGV), "pmalloc: write to sealed static range of ");
  }
  // A fault in neither a pool nor a range gets no report (the default action still kills).
  void* other = mmap(nullptr, Page(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(other, MAP_FAILED);
  EXPECT_EXIT(
      {
        LockDown();
        *static_cast<volatile int*>(other) = 1;
      },
      testing::KilledBySignal(SIGSEGV), "locked down\n$");
}

// Under protect:shared (the default) lockdown moves the sections onto read-only shared
// memfd mappings: /proc/self/mem cannot write them, and every byte is kept.
TEST(RoAfterInit, SectionsMoveToASharedMappingAndKeepTheirBytes) {
  EXPECT_EXIT(
      {
        // Drop the page from the page tables, as reclaim may: it is then only in the file.
        if (madvise(file_text, sizeof(file_text), MADV_DONTNEED) != 0) _exit(2);
        LockDown();
        if (strcmp(file_text, "bytes from the executable file") != 0) _exit(3);
        if (ro_int != 5 || strcmp(cfg.name, "init") != 0) _exit(4);
        const int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
        if (fd < 0) _exit(5);
        if (pwrite(fd, "X", 1, static_cast<off_t>(Addr(file_text))) != -1 || errno != EIO) {
          _exit(6);
        }
        if (pwrite(fd, "X", 1, static_cast<off_t>(Addr(ro_module_address()))) != -1 ||
            errno != EIO) {
          _exit(7);
        }
        if (file_text[0] != 'b') _exit(8);
        _exit(0);
      },
      testing::ExitedWithCode(0), "locked down");
}

TEST(RoAfterInit, SharedObjectWriteAfterLockdownFaults) {
  EXPECT_EXIT(
      {
        LockDown();
        ro_module_set(1);
      },
      testing::KilledBySignal(SIGSEGV), "locked down");
}

TEST(RoAfterInit, ReadsAndNeighboursKeepWorkingAfterLockdown) {
  const int limit = cfg.limit, module = ro_module_get();
  EXPECT_EXIT(
      {
        LockDown();
        if (cfg.limit != limit || ro_int != 5 || ro_module_get() != module) _exit(3);
        plain_before++;
        plain_after++;
        plain_bss++;
        second_plain++;
        ro_module_plain_set(8);
        if (pmalloc_lockdown(0) != 0) _exit(4);  // a second lockdown is harmless
        _exit(0);
      },
      testing::ExitedWithCode(0), "locked down");
}

TEST(RoAfterInit, SealedAfterLockdownSeal) {
  if (!HasMseal()) GTEST_SKIP() << "kernel has no mseal(2)";
  EXPECT_EXIT(
      {
        LockDown(PMALLOC_LOCKDOWN_SEAL);
        void* page = reinterpret_cast<void*>(Start());
        if (mprotect(page, Page(), PROT_READ | PROT_WRITE) == 0 || errno != EPERM) _exit(3);
        void* mod = reinterpret_cast<void*>(Addr(ro_module_address()) & ~(Page() - 1));
        if (mprotect(mod, Page(), PROT_READ | PROT_WRITE) == 0 || errno != EPERM) _exit(4);
        _exit(0);
      },
      testing::ExitedWithCode(0), "locked down");
}

TEST(RoAfterInit, RegistrationIsOncePerModuleAndChecksPages) {
  // A repeated registration of the same module is a no-op.
  EXPECT_EQ(
      pmalloc_ro_after_init_register(__start_pmalloc_ro_after_init, __stop_pmalloc_ro_after_init),
      0);
  EXPECT_EQ(pmalloc_ro_after_init_register(nullptr, nullptr), 0);
  char* page = reinterpret_cast<char*>(Start());
  EXPECT_DEATH(pmalloc_ro_after_init_register(page + 8, page + Page()),
               "pmalloc: not whole pages: __ro_after_init section");
  EXPECT_DEATH(pmalloc_ro_after_init_register(page, page + 100),
               "pmalloc: not whole pages: __ro_after_init section");
}

// A module loaded with dlopen registers from its constructor and is pinned: dlclose must
// not unmap pages that are in the lockdown set.
TEST(RoAfterInit, DlopenedModuleIsProtectedAndPinned) {
  void* handle = dlopen(RO_DL_MODULE_PATH, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << dlerror();
  auto set = reinterpret_cast<void (*)(int)>(dlsym(handle, "ro_dl_set"));
  auto addr = reinterpret_cast<const int* (*)(void)>(dlsym(handle, "ro_dl_address"));
  ASSERT_NE(set, nullptr);
  ASSERT_NE(addr, nullptr);
  set(5);
  const int* value = addr();
  EXPECT_EQ(dlclose(handle), 0);
  EXPECT_EQ(*value, 5);  // still mapped: pinned
  EXPECT_EXIT(
      {
        LockDown();
        set(6);
      },
      testing::KilledBySignal(SIGSEGV), "locked down");
}

// Any number of modules with __ro_after_init statics: 300 copies of one module (distinct
// files, so distinct modules) all register, and the last is protected by lockdown. It used
// to abort at the 256th range (issue 9.8). In a child: the modules stay pinned.
TEST(RoAfterInit, ThreeHundredModulesAreAllProtected) {
  char dir[] = "/tmp/pmalloc-ro-modules-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  auto path = [&dir](int i) { return std::string(dir) + "/m" + std::to_string(i) + ".so"; };
  const pid_t pid = fork();
  if (pid == 0) {
    std::string module;
    {
      FILE* in = fopen(RO_DL_MODULE_PATH, "rb");
      if (in == nullptr) _exit(11);
      char buf[65536];
      size_t n;
      while ((n = fread(buf, 1, sizeof(buf), in)) > 0) module.append(buf, n);
      fclose(in);
    }
    void (*last_set)(int) = nullptr;
    for (int i = 0; i < 300; ++i) {
      FILE* out = fopen(path(i).c_str(), "wb");
      if (out == nullptr || fwrite(module.data(), 1, module.size(), out) != module.size())
        _exit(12);
      fclose(out);
      void* handle = dlopen(path(i).c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) _exit(13);
      last_set = reinterpret_cast<void (*)(int)>(dlsym(handle, "ro_dl_set"));
      if (last_set == nullptr) _exit(14);
    }
    last_set(2);  // writable before lockdown
    if (pmalloc_lockdown(0) != 0) _exit(15);
    last_set(3);  // must fault
    _exit(0);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  for (int i = 0; i < 300; ++i) unlink(path(i).c_str());
  rmdir(dir);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
}

}  // namespace
