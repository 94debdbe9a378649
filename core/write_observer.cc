#include "core/write_observer.h"

#include <atomic>

#include "absl/base/attributes.h"

namespace pmalloc::internal {
namespace {

ABSL_CONST_INIT std::atomic<WriteObserver> observer{nullptr};

}  // namespace

void SetWriteObserver(WriteObserver fn) { observer.store(fn, std::memory_order_release); }

void NotifyWrite(const void* addr, uintptr_t pc, const char* via) {
  const WriteObserver fn = observer.load(std::memory_order_acquire);
  if (fn != nullptr) fn(addr, pc, via);
}

}  // namespace pmalloc::internal
