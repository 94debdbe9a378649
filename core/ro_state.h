// pmalloc's own once-written state, read-only after the first lockdown (hardened_malloc's
// read-only-after-init page): the objects every malloc/free or fault trusts without checking
// (entry-point tables, the window's bounds, the parsed configuration, the chained signal
// actions, hook pointers) live in one page-aligned linker section, `pmalloc_ro`, that
// Registry::Lockdown makes read-only (and seals with the pools under PMALLOC_LOCKDOWN_SEAL).
// Any layer places an object there with PMALLOC_RO_STATE; core knows only the section.
//
// Every write to such an object goes through an RoWrite: before lockdown it writes in place;
// after lockdown it writes a fresh copy of the section and moves the copy over the section
// read-only in one step (platform::MoveOver), so the section is never writable at its own
// address once locked. After a sealed lockdown writes fail with EPERM.
#ifndef PMALLOC_CORE_RO_STATE_H_
#define PMALLOC_CORE_RO_STATE_H_

#include <signal.h>

#include <cstddef>
#include <cstdint>

namespace pmalloc::internal {

// Alignment and size granule of every object in the section: whole pages, so the section is
// whole pages and protecting it touches nothing else (the linker orders input sections as
// it likes; only page-sized objects keep the last page ours).
inline constexpr size_t kRoPage = 4096;

// Puts a variable in the section. REQUIRES: its type is an RoSlot<T> (page-aligned, page
// multiple), checked where it is used by RoWrite::operator().
#define PMALLOC_RO_STATE __attribute__((section("pmalloc_ro"), used))

template <class T>
struct alignas(kRoPage) RoSlot {
  T v;
};

// A write to the section. Construction blocks signals and takes the section's writer lock
// (async-signal-safe: a spin, with every signal blocked, between writers only); after
// lockdown it maps a copy (one mmap, a copy of the section). Destruction commits and
// unblocks signals.
// Readers never lock: they see the old bytes or the new.
class RoWrite {
 public:
  RoWrite();
  ~RoWrite();
  RoWrite(const RoWrite&) = delete;
  RoWrite& operator=(const RoWrite&) = delete;

  // False when writes are impossible: errno EPERM (sealed) or ENOMEM (no page for the copy).
  bool ok() const { return ok_; }

  // Applies the writes (after lockdown: mprotect of the copy, one mremap over the section).
  // False with errno when nothing was written: ok() was false, or EPERM/ENOMEM from the move.
  // The destructor commits if this was not called.
  bool Commit();

  // Where to write `slot`'s value during this RoWrite. REQUIRES: ok().
  template <class T>
  T* operator()(RoSlot<T>* slot) const {
    static_assert(sizeof(RoSlot<T>) % kRoPage == 0 && alignof(RoSlot<T>) == kRoPage);
    return At(&slot->v);
  }
  // Where to write the object at `p`, a part of an object in the section. REQUIRES: ok().
  template <class U>
  U* At(const U* p) const {
    return reinterpret_cast<U*>(reinterpret_cast<uintptr_t>(p) + delta_);
  }

 private:
  bool ok_ = true;
  bool done_ = false;
  uintptr_t delta_ = 0;  // copy - section, after lockdown
  sigset_t saved_mask_;
};

// Makes the section read-only (seal: and seals it). Idempotent; a later call only seals.
// 0, or -1 with errno (mprotect's or mseal's; ENOSYS: no mseal).
int LockRoState(bool seal);

// The section's bounds in this image (empty if nothing was placed in it), and whether
// LockRoState has run. For tests and fault reports.
void RoStateBounds(uintptr_t* start, uintptr_t* end);
bool RoStateLocked();

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_RO_STATE_H_
