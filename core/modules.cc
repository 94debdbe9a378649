// Stub body (first commit of the contract); the real implementation follows.
#include "core/modules.h"

namespace pmalloc::internal {

void ForEachModule(void (*)(const char*, const char*, const char*, void*), void*) {}

}  // namespace pmalloc::internal
