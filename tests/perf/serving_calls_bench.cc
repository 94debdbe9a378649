// Cost of the face's interposers (preload/serving_calls.cc, kernel_writes.cc) against
// glibc's own function, same run: linked with -lpmalloc, `poll`, `epoll_wait` and `read`
// resolve to the interposers, the *_glibc cases call glibc's symbol found through
// dlopen("libc.so.6"). Run with PMALLOC_CONF=lockdown:call:listen after the trigger fired
// (the benchmark calls listen first), or with no trigger at all: both take the one
// not-taken branch. docs/triggers.md has the numbers.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchmark/benchmark.h"

namespace {

template <typename Fn>
Fn Glibc(const char* name) {
  static void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  return reinterpret_cast<Fn>(dlsym(libc, name));
}

struct Fire {
  Fire() { (void)listen(-1, 1); }  // lockdown:call:listen fires here
} fire;

void BM_Poll(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(poll(nullptr, 0, 0));
}
void BM_Poll_glibc(benchmark::State& state) {
  auto fn = Glibc<decltype(&poll)>("poll");
  for (auto _ : state) benchmark::DoNotOptimize(fn(nullptr, 0, 0));
}

void BM_EpollWait(benchmark::State& state) {
  const int ep = epoll_create1(0);
  epoll_event ev[4];
  for (auto _ : state) benchmark::DoNotOptimize(epoll_wait(ep, ev, 4, 0));
  close(ep);
}
void BM_EpollWait_glibc(benchmark::State& state) {
  auto fn = Glibc<decltype(&epoll_wait)>("epoll_wait");
  const int ep = epoll_create1(0);
  epoll_event ev[4];
  for (auto _ : state) benchmark::DoNotOptimize(fn(ep, ev, 4, 0));
  close(ep);
}

void BM_Read(benchmark::State& state) {
  const int fd = open("/dev/zero", O_RDONLY);
  char buf[64];
  for (auto _ : state) benchmark::DoNotOptimize(read(fd, buf, sizeof(buf)));
  close(fd);
}
void BM_Read_glibc(benchmark::State& state) {
  auto fn = Glibc<decltype(&read)>("read");
  const int fd = open("/dev/zero", O_RDONLY);
  char buf[64];
  for (auto _ : state) benchmark::DoNotOptimize(fn(fd, buf, sizeof(buf)));
  close(fd);
}

BENCHMARK(BM_Poll);
BENCHMARK(BM_Poll_glibc);
BENCHMARK(BM_EpollWait);
BENCHMARK(BM_EpollWait_glibc);
BENCHMARK(BM_Read);
BENCHMARK(BM_Read_glibc);

}  // namespace
