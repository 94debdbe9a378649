// C++ API of pmalloc: RAII pools, an STL allocator, and lockdown with absl::Status.
// Thin wrappers over pmalloc.h; the same errors, thread safety and costs apply.
// Header-only on purpose: libpmalloc.so exports only the C API, so it does not depend on
// absl::Status. Counted with ldd on Debian 12's Abseil (20220623): a preloaded process
// loads 7 Abseil libraries (absl_symbolize, absl_base and their dependencies, which the
// library itself needs); absl_status + absl_statusor need 25, the same 7 plus 18 that only
// users of this header load. C++ users link absl::status through pmalloc::pmalloc's
// interface.
#ifndef PMALLOC_PMALLOC_HPP_
#define PMALLOC_PMALLOC_HPP_

#include <errno.h>

#include <cstddef>
#include <limits>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc {

namespace detail {
// The Status for a failed C call: `call(pool name) failed`, with the code its errno means.
inline absl::Status FromErrno(int err, const char* call, const char* pool_name) {
  std::string msg(call);
  msg.append("(").append(pool_name == nullptr ? "" : pool_name).append(") failed");
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
}  // namespace detail

struct PoolOptions {
  size_t refill = 0;               // minimum area size (0: 64 KiB)
  unsigned short align_order = 0;  // allocation alignment 1 << align_order (0: 16)
  bool growable = false;           // may allocate after protect (PMALLOC_POOL_GROWABLE)
  bool manual = false;             // left out of Lockdown() (PMALLOC_POOL_MANUAL)
  bool write_rare = false;         // changed after protect by Write() (PMALLOC_POOL_WRITE_RARE)
};

// Write-rare update (docs/write-rare.md) of `*dst`, a trivially copyable object inside one
// live allocation of a write-rare pool: pmalloc_wr_assign_ptr for a pointer (one atomic
// store), pmalloc_wr_memcpy otherwise. Errors: InvalidArgument (EINVAL: not inside one live
// allocation of a write-rare pool, or a misaligned pointer), PermissionDenied (EPERM: the
// pool went through MakeReadOnly), others from errno.
template <class T>
absl::Status Write(T* dst, const T& value) {
  static_assert(std::is_trivially_copyable_v<T>, "write-rare objects are copied bytewise");
  int rc;
  if constexpr (std::is_pointer_v<T>) {
    rc = pmalloc_wr_assign_ptr(static_cast<void*>(dst), reinterpret_cast<const void*>(value));
  } else {
    rc = pmalloc_wr_memcpy(static_cast<void*>(dst), &value, sizeof(T));
  }
  if (rc == 0) return absl::OkStatus();
  const int err = errno;
  return detail::FromErrno(err,
                           std::is_pointer_v<T> ? "pmalloc_wr_assign_ptr" : "pmalloc_wr_memcpy",
                           pmalloc_pool_name(pmalloc_pool_of(dst)));
}

// A T kept in write-rare pool memory, e.g. a member of a structure allocated there:
// read as usual, changed only by Set (pmalloc::Write). A pointer T is loaded with acquire
// and stored atomically, so a reader on another thread sees the old or the new pointer and
// what the writer built before Set. Trivially copyable, the size and alignment of T.
template <class T>
class WriteRare {
  static_assert(std::is_trivially_copyable_v<T>, "write-rare objects are copied bytewise");

 public:
  WriteRare() = default;
  explicit WriteRare(const T& value) : value_(value) {}  // before protect: a plain store

  T get() const {
    if constexpr (std::is_pointer_v<T>) {
      return __atomic_load_n(&value_, __ATOMIC_ACQUIRE);
    } else {
      return value_;
    }
  }
  operator T() const { return get(); }  // NOLINT(google-explicit-constructor)
  T operator->() const {
    static_assert(std::is_pointer_v<T>, "operator-> is for pointers");
    return get();
  }

  absl::Status Set(const T& value) { return Write(&value_, value); }

 private:
  T value_{};
};

// Owns a pmalloc pool. Move-only. The destructor destroys the pool; if that fails (live
// allocations: EBUSY, or sealed: EPERM) the pool is left in place, still valid memory.
class Pool {
 public:
  // Errors: InvalidArgument (bad name/options), ResourceExhausted (no memory).
  static absl::StatusOr<Pool> Create(std::string_view name, PoolOptions options = {}) {
    const std::string n(name);
    const unsigned flags = (options.growable ? PMALLOC_POOL_GROWABLE : 0u) |
                           (options.manual ? PMALLOC_POOL_MANUAL : 0u) |
                           (options.write_rare ? PMALLOC_POOL_WRITE_RARE : 0u);
    pmalloc_pool* p = pmalloc_create_pool(n.c_str(), options.refill, options.align_order, flags);
    if (p == nullptr) return detail::FromErrno(errno, "pmalloc_create_pool", n.c_str());
    return Pool(p);
  }

  Pool(Pool&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)) {}
  Pool& operator=(Pool&& other) noexcept {
    if (this != &other) {
      if (pool_ != nullptr) pmalloc_destroy_pool(pool_);
      pool_ = std::exchange(other.pool_, nullptr);
    }
    return *this;
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() {
    if (pool_ != nullptr) pmalloc_destroy_pool(pool_);
  }

  // nullptr on failure (errno as pmalloc_aligned). align 0: the pool's alignment.
  void* Allocate(size_t size, size_t align = 0) {
    return align == 0 ? pmalloc(pool_, size) : pmalloc_aligned(pool_, size, align);
  }
  void Free(const void* p) { pfree(pool_, p); }

  // Constructs a T in the pool; nullptr when out of memory or the pool is locked.
  template <class T, class... A>
  T* New(A&&... args) {
    void* p = Allocate(sizeof(T), alignof(T));
    return p == nullptr ? nullptr : new (p) T(std::forward<A>(args)...);
  }

  absl::Status Protect() {
    if (pmalloc_protect_pool(pool_) == 0) return absl::OkStatus();
    return detail::FromErrno(errno, "pmalloc_protect_pool", pmalloc_pool_name(pool_));
  }
  absl::Status Seal() {
    if (pmalloc_seal_pool(pool_) == 0) return absl::OkStatus();
    return detail::FromErrno(errno, "pmalloc_seal_pool", pmalloc_pool_name(pool_));
  }
  // Write-rare update of `*dst` inside this pool (pmalloc::Write; InvalidArgument when dst
  // is not in one of its live allocations).
  template <class T>
  absl::Status Write(T* dst, const T& value) {
    if (pmalloc_pool_of(dst) != pool_) {
      return detail::FromErrno(EINVAL, "pmalloc_wr_memcpy", pmalloc_pool_name(pool_));
    }
    return ::pmalloc::Write(dst, value);
  }
  // Write-rare pool to read-only for good (pmalloc_make_pool_ro).
  absl::Status MakeReadOnly() {
    if (pmalloc_make_pool_ro(pool_) == 0) return absl::OkStatus();
    return detail::FromErrno(errno, "pmalloc_make_pool_ro", pmalloc_pool_name(pool_));
  }
  // Destroys the pool now; on error the pool stays owned by this object.
  absl::Status Destroy() {
    if (pool_ == nullptr) return absl::OkStatus();
    if (pmalloc_destroy_pool(pool_) != 0) {
      return detail::FromErrno(errno, "pmalloc_destroy_pool", pmalloc_pool_name(pool_));
    }
    pool_ = nullptr;
    return absl::OkStatus();
  }
  pmalloc_stats stats() const {
    pmalloc_stats s{};
    pmalloc_pool_stats(pool_, &s);
    return s;
  }

  pmalloc_pool* get() const { return pool_; }
  // Gives up ownership: the pool will not be destroyed by this object.
  pmalloc_pool* release() { return std::exchange(pool_, nullptr); }

 private:
  explicit Pool(pmalloc_pool* pool) : pool_(pool) {}
  pmalloc_pool* pool_;
};

// Standard allocator drawing from a pool: works with std::vector, std::map,
// std::basic_string and absl::flat_hash_map. Throws std::bad_alloc on failure.
template <class T>
class PoolAllocator {
 public:
  using value_type = T;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;

  // Draws from the process-wide default pool (pmalloc_default_pool()). Containers need
  // this where the standard builds a default allocator, e.g. std::basic_string::substr.
  PoolAllocator() noexcept : pool_(pmalloc_default_pool()) {}
  explicit PoolAllocator(pmalloc_pool* pool) noexcept : pool_(pool) {}
  explicit PoolAllocator(const Pool& pool) noexcept : pool_(pool.get()) {}
  template <class U>
  PoolAllocator(const PoolAllocator<U>& other) noexcept : pool_(other.pool()) {}  // NOLINT

  T* allocate(size_t n) {
    if (n > std::numeric_limits<size_t>::max() / sizeof(T)) throw std::bad_alloc();
    void* p = pmalloc_aligned(pool_, n * sizeof(T), alignof(T) < 8 ? 8 : alignof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { pfree(pool_, p); }

  pmalloc_pool* pool() const noexcept { return pool_; }

  template <class U>
  bool operator==(const PoolAllocator<U>& o) const noexcept {
    return pool_ == o.pool();
  }
  template <class U>
  bool operator!=(const PoolAllocator<U>& o) const noexcept {
    return pool_ != o.pool();
  }

 private:
  pmalloc_pool* pool_;
};

// Tags the calling thread for the lifetime of the object: every malloc/new made on this
// thread (STL containers included) comes from `pool` (see pmalloc_scope_enter). Nests; the
// destructor restores the previous scope. Not movable: a scope belongs to one thread.
class ScopedPool {
 public:
  explicit ScopedPool(pmalloc_pool* pool) noexcept : prev_(pmalloc_scope_enter(pool)) {}
  explicit ScopedPool(const Pool& pool) noexcept : ScopedPool(pool.get()) {}
  ScopedPool(const ScopedPool&) = delete;
  ScopedPool& operator=(const ScopedPool&) = delete;
  ~ScopedPool() { pmalloc_scope_exit(prev_); }

 private:
  pmalloc_pool* prev_;
};

struct LockdownOptions {
  bool seal = false;  // also mseal(2): irreversible
};

// Protects every non-manual pool (pmalloc_lockdown). Unimplemented when sealing is not
// supported by the kernel (the pools are still protected).
inline absl::Status Lockdown(LockdownOptions options = {}) {
  if (pmalloc_lockdown(options.seal ? PMALLOC_LOCKDOWN_SEAL : 0u) == 0) return absl::OkStatus();
  return detail::FromErrno(errno, "pmalloc_lockdown", nullptr);
}

}  // namespace pmalloc

#endif  // PMALLOC_PMALLOC_HPP_
