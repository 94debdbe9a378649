// Multi-threaded producer/consumer: producers allocate messages (16..1024 bytes), hand them
// over in batches through a mutex-protected queue, consumers read and free them: every
// block is freed by a thread other than the one that allocated it.
// Usage: bench_producer_consumer [million messages] [producer/consumer pairs]
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBatch = 256;
struct Batch {
  void* msgs[kBatch];
  uint32_t sizes[kBatch];
};

std::mutex mu;
std::condition_variable cv;
std::deque<Batch*> queue;
int producers_left = 0;

void Produce(long count, uint64_t seed) {
  uint64_t x = seed;
  for (long done = 0; done < count; done += kBatch) {
    Batch* b = new Batch;
    for (size_t i = 0; i < kBatch; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const uint32_t size = 16 + static_cast<uint32_t>((x >> 33) & 1008);
      auto* m = static_cast<unsigned char*>(malloc(size));
      m[0] = static_cast<unsigned char>(x);
      m[size - 1] = static_cast<unsigned char>(x >> 8);
      b->msgs[i] = m;
      b->sizes[i] = size;
    }
    std::lock_guard<std::mutex> l(mu);
    queue.push_back(b);
    cv.notify_one();
  }
  std::lock_guard<std::mutex> l(mu);
  --producers_left;
  cv.notify_all();
}

uint64_t Consume() {
  uint64_t sum = 0;
  for (;;) {
    Batch* b;
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [] { return !queue.empty() || producers_left == 0; });
      if (queue.empty()) return sum;
      b = queue.front();
      queue.pop_front();
    }
    for (size_t i = 0; i < kBatch; ++i) {
      auto* m = static_cast<unsigned char*>(b->msgs[i]);
      sum += m[0] + m[b->sizes[i] - 1];
      free(m);
    }
    delete b;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const long total = (argc > 1 ? atol(argv[1]) : 8) * 1000000L;
  const int pairs = argc > 2 ? atoi(argv[2]) : 2;
  producers_left = pairs;
  std::vector<std::thread> threads;
  std::vector<uint64_t> sums(static_cast<size_t>(pairs));
  for (int i = 0; i < pairs; ++i) threads.emplace_back(Produce, total / pairs, 12345u + i);
  for (int i = 0; i < pairs; ++i) {
    threads.emplace_back([&sums, i] { sums[static_cast<size_t>(i)] = Consume(); });
  }
  for (auto& t : threads) t.join();
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  printf("%llu\n", static_cast<unsigned long long>(sum));
  return 0;
}
