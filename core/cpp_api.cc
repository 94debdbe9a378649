#include <errno.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "pmalloc/pmalloc.hpp"

namespace pmalloc {
namespace {

absl::Status FromErrno(int err, const char* call, const char* pool_name) {
  const std::string msg =
      absl::StrCat(call, "(", pool_name == nullptr ? "" : pool_name, ") failed");
  switch (err) {
    case EINVAL:
      return absl::InvalidArgumentError(msg);
    case ENOMEM:
      return absl::ResourceExhaustedError(msg);
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case EBUSY:
      return absl::FailedPreconditionError(msg);
    case ENOSYS:
      return absl::UnimplementedError(msg);
    default:
      return absl::ErrnoToStatus(err, msg);
  }
}

}  // namespace

absl::StatusOr<Pool> Pool::Create(std::string_view name, PoolOptions options) {
  const std::string n(name);
  const unsigned flags = (options.growable ? PMALLOC_POOL_GROWABLE : 0u) |
                         (options.manual ? PMALLOC_POOL_MANUAL : 0u);
  pmalloc_pool* p = pmalloc_create_pool(n.c_str(), options.refill, options.align_order, flags);
  if (p == nullptr) return FromErrno(errno, "pmalloc_create_pool", n.c_str());
  return Pool(p);
}

Pool& Pool::operator=(Pool&& other) noexcept {
  if (this != &other) {
    if (pool_ != nullptr) pmalloc_destroy_pool(pool_);
    pool_ = std::exchange(other.pool_, nullptr);
  }
  return *this;
}

Pool::~Pool() {
  if (pool_ != nullptr) pmalloc_destroy_pool(pool_);
}

void* Pool::Allocate(size_t size, size_t align) {
  return align == 0 ? pmalloc(pool_, size) : pmalloc_aligned(pool_, size, align);
}

absl::Status Pool::Protect() {
  if (pmalloc_protect_pool(pool_) == 0) return absl::OkStatus();
  return FromErrno(errno, "pmalloc_protect_pool", pmalloc_pool_name(pool_));
}

absl::Status Pool::Seal() {
  if (pmalloc_seal_pool(pool_) == 0) return absl::OkStatus();
  return FromErrno(errno, "pmalloc_seal_pool", pmalloc_pool_name(pool_));
}

absl::Status Pool::Destroy() {
  if (pool_ == nullptr) return absl::OkStatus();
  if (pmalloc_destroy_pool(pool_) != 0) {
    return FromErrno(errno, "pmalloc_destroy_pool", pmalloc_pool_name(pool_));
  }
  pool_ = nullptr;
  return absl::OkStatus();
}

pmalloc_stats Pool::stats() const {
  pmalloc_stats s{};
  pmalloc_pool_stats(pool_, &s);
  return s;
}

absl::Status Lockdown(LockdownOptions options) {
  if (pmalloc_lockdown(options.seal ? PMALLOC_LOCKDOWN_SEAL : 0u) == 0) return absl::OkStatus();
  return FromErrno(errno, "pmalloc_lockdown", nullptr);
}

}  // namespace pmalloc
