// The area manager: one reserved window of address space from which every pool area is
// carved. "Is p pool memory?" is one subtraction and compare; "which area?" is a shift and
// a table load. Areas are granule-aligned and followed by at least one unmapped granule, so
// an overflow off the end of one pool faults instead of reaching another pool.
#ifndef PMALLOC_CORE_WINDOW_H_
#define PMALLOC_CORE_WINDOW_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/platform.h"
#include "core/ro_state.h"

namespace pmalloc::internal {

class Pool;
struct BlockMap;

// Address granule of the window (area alignment and lookup table resolution).
inline constexpr size_t kGranuleShift = 16;
inline constexpr size_t kGranule = size_t{1} << kGranuleShift;

inline constexpr size_t kDefaultWindowSize = size_t{64} << 30;
// The smallest window Window::SetSize accepts, and the floor EnsureInit halves down to.
inline constexpr size_t kMinWindowSize = size_t{1} << 30;

// One virtually contiguous run of pool pages, as the window knows it: where it is, who
// owns it and whether it is protected. What the pool allocator keeps per area (block
// starts, live blocks, bump) is the pool's BlockMap (core/block_map.h), off pool pages.
struct Area {
  uintptr_t base = 0;
  size_t size = 0;  // mapped bytes (page multiple)
  size_t span = 0;  // reserved bytes, including the trailing guard
  std::atomic<bool> writable{true};
  std::atomic<bool> sealed{false};
  // How the pages are mapped (platform.h). Changed under the owning pool's lock, and by the
  // fork handler with that lock held.
  enum class Backing : uint8_t {
    kAnonymous,    // private anonymous (protect:mprotect, or no memfd to be had)
    kShared,       // MAP_SHARED at `file_offset` of the pool's memfd, or (protected) of a copy
    kPrivateFile,  // privatised by fork: MAP_PRIVATE over the pool's old memfd
  };
  Backing backing = Backing::kAnonymous;
  size_t file_offset = 0;
  Pool* pool = nullptr;
  BlockMap* blocks = nullptr;  // set by the owning pool once the area is mapped

  bool Contains(uintptr_t p) const { return p - base < size; }
};

// Hidden explicitly: -fvisibility=hidden does not apply to declarations, so without it
// every use outside window.cc (the free() fast path) would load base_/size_ through the GOT.
class __attribute__((visibility("hidden"))) Window {
 public:
  // True when `p` lies anywhere in the window. Lock-free, valid before initialisation.
  static bool Contains(const void* p) {
    return reinterpret_cast<uintptr_t>(p) - state_.v.base.load(std::memory_order_relaxed) <
           state_.v.size.load(std::memory_order_relaxed);
  }

  // The live area containing `p`, or nullptr. Lock-free and async-signal-safe.
  static Area* AreaOf(const void* p) {
    // size first, with acquire: it is published last (EnsureInit's release store), so a
    // non-zero size guarantees that base and the table pointer are the published ones.
    const size_t size = state_.v.size.load(std::memory_order_acquire);
    const uintptr_t off =
        reinterpret_cast<uintptr_t>(p) - state_.v.base.load(std::memory_order_relaxed);
    if (off >= size) return nullptr;
    Area* a = state_.v.table[off >> kGranuleShift].load(std::memory_order_acquire);
    return (a != nullptr && a->Contains(reinterpret_cast<uintptr_t>(p))) ? a : nullptr;
  }

  // Sets the window size used at initialisation (rounded up to a granule). False once the
  // window exists or when `bytes` < kMinWindowSize.
  static bool SetSize(size_t bytes);

  // Reserves the window on first call (halving the size down to 1 GiB if the system
  // refuses). Thread-safe. False with errno ENOMEM when nothing could be reserved.
  static bool EnsureInit();

  // Maps a new writable area of at least `size` bytes for `pool`: shared on `file` when
  // given (platform::MapSharedArea; /proc/PID/maps shows the memfd's name), otherwise
  // private anonymous named `name` where the kernel allows it. Areas of 2 MiB or more start
  // on a 2 MiB boundary, so anonymous ones can get transparent huge pages. Returns nullptr
  // with errno set on failure.
  static Area* NewArea(Pool* pool, size_t size, const char* name,
                       platform::PoolFile* file = nullptr);

  // Unmaps the area, returns its pages and address range, frees the record (not the
  // pool's BlockMap).
  // False with errno set if the pages could not be unmapped (the area stays registered).
  static bool DeleteArea(Area* area);

  static uintptr_t base() { return state_.v.base.load(std::memory_order_relaxed); }
  static size_t size() { return state_.v.size.load(std::memory_order_relaxed); }

  // Fork support: the window lock is held across fork by the registry.
  static void LockForFork();
  static void UnlockAfterFork();

 private:
  // Written once, by EnsureInit; read-only after lockdown (core/ro_state.h). The table the
  // pointer leads to stays writable (areas come and go).
  struct State {
    std::atomic<uintptr_t> base{0};
    std::atomic<size_t> size{0};
    std::atomic<Area*>* table = nullptr;
  };
  static RoSlot<State> state_;
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_WINDOW_H_
