#include "core/pool.h"

#include <errno.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "core/config.h"
#include "core/fatal.h"
#include "core/log.h"
#include "core/platform.h"
#include "core/sites.h"
#include "core/write_rare.h"

namespace pmalloc::internal {

using SpinLockHolder = PoolLockHolder;

namespace {

constexpr size_t RoundUp(size_t v, size_t to) { return (v + to - 1) & ~(to - 1); }
constexpr size_t kHugePage = size_t{2} << 20;

void DeleteBlockMap(BlockMap* m) {
  MetaFree(m->start_bits);
  MetaFree(m->live_bits);
  MetaDelete(m);
}

}  // namespace

Pool* Pool::Create(const char* name, size_t refill, unsigned align_order, unsigned flags) {
  if (name == nullptr || name[0] == '\0' || strlen(name) > PMALLOC_NAME_MAX ||
      align_order > kMaxPoolAlignOrder ||
      (flags & ~(PMALLOC_POOL_GROWABLE | PMALLOC_POOL_MANUAL | PMALLOC_POOL_WRITE_RARE)) != 0 ||
      refill > kMaxAllocation) {
    errno = EINVAL;
    return nullptr;
  }
  void* mem = MetaAlloc(sizeof(Pool), /*zero=*/true);
  if (mem == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  Pool* pool = new (mem) Pool();
  pool->flags_ = flags;
  pool->align_ = align_order == 0 ? 16 : std::max(kUnit, size_t{1} << align_order);
  pool->refill_ = RoundUp(refill == 0 ? kDefaultRefill : refill, platform::PageSize());
  memcpy(pool->name_, name, strlen(name) + 1);
  memcpy(pool->map_name_, "pmalloc:", 8);
  memcpy(pool->map_name_ + 8, name, strlen(name) + 1);
  return pool;
}

void Pool::Delete(Pool* pool) {
  pool->magic_ = 0;
  pool->~Pool();
  MetaFree(pool);
}

void* Pool::Allocate(size_t size, size_t align, bool zero, const void* copy_from, size_t copy_len,
                     const Area* source) {
  if (size > kMaxAllocation) {
    errno = ENOMEM;
    return nullptr;
  }
  if (align == 0 || align < align_) align = align_;
  if ((align & (align - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  if (align > (size_t{1} << kMaxAlignOrder)) {
    errno = ENOMEM;  // a valid alignment the pool cannot satisfy, as glibc says
    return nullptr;
  }
  const size_t rsize = RoundUp(size == 0 ? 1 : size, align_);
  // Alignment beyond the granule needs slack in a new area.
  const size_t slack = align > kGranule ? align - kGranule : 0;
  SpinLockHolder h(&lock_);
  if (source != nullptr && !source->writable.load(std::memory_order_relaxed)) {
    errno = EPERM;
    return nullptr;
  }
  // Reuse first, then the current area's tail, then reuse of merged memory, then a new area:
  // a pool opens areas only when what it has freed cannot serve the request.
  uintptr_t p = align == align_ ? TakeFree(rsize) : 0;
  bool fresh = false;
  if (p == 0) {
    p = Bump(rsize, align);
    fresh = p != 0;
  }
  if (p == 0 && align == align_) p = Reclaim(rsize);
  if (p == 0) {
    if (!OpenArea(rsize + slack)) return nullptr;  // errno set by OpenArea
    p = Bump(rsize, align);
    if (p == 0) {
      errno = ENOMEM;
      return nullptr;
    }
    fresh = true;
  }
  live_bytes_ += rsize;
  ++live_allocs_;
  // Under the lock: once it is released a lockdown may make the block read-only. Bump
  // memory has never been handed out, and fresh areas are zero-filled mappings.
  if (zero && !fresh) memset(reinterpret_cast<void*>(p), 0, size);
  if (copy_len != 0) memcpy(reinterpret_cast<void*>(p), copy_from, copy_len);
  return reinterpret_cast<void*>(p);
}

uintptr_t Pool::TakeFree(size_t rsize) {
  const size_t units = rsize >> kUnitShift;
  if (units > kSmallUnits) return TakeRange(rsize);
  AddrVector& list = small_free_[units];
  if (list.empty()) return 0;
  const uintptr_t p = list.back();
  list.pop_back();
  small_free_bytes_ -= rsize;
  BlockMap* m = OwnMapOf(p);
  SetBit(m->live_bits, (p - m->area->base) >> kUnitShift);
  m->handed_out += rsize;
  return p;
}

uintptr_t Pool::TakeRange(size_t rsize) {
  const FreeRanges::Range fit = ranges_.TakeBestFit(rsize);
  if (fit.len == 0) return 0;
  const uintptr_t p = fit.start;
  BlockMap* m = OwnMapOf(p);
  if (fit.len > rsize) PushNewFree(m, p + rsize, fit.len - rsize);  // the rest stays free
  SetBit(m->live_bits, (p - m->area->base) >> kUnitShift);
  m->handed_out += rsize;
  return p;
}

uintptr_t Pool::Reclaim(size_t rsize) {
  // Larger requests already looked at the ranges (TakeFree).
  uintptr_t p = (rsize >> kUnitShift) <= kSmallUnits ? TakeRange(rsize) : 0;
  if (p == 0 && small_free_bytes_ != 0 && small_free_bytes_ >= mapped_bytes_ / 8) {
    FlushSmallLists();
    p = TakeRange(rsize);
  }
  return p;
}

void Pool::PushFree(BlockMap* m, uintptr_t start, size_t len) {
  // Free blocks keep their start bit; only blocks of a whole number of pool alignment
  // units are worth keeping, the rest stays as dead padding of the area.
  len &= ~(align_ - 1);
  if (len == 0 || !m->area->writable.load(std::memory_order_relaxed)) return;
  const size_t units = len >> kUnitShift;
  if (units > kSmallUnits) {
    InsertRange(m, start, len);
    return;
  }
  try {
    small_free_[units].push_back(start);
    small_free_bytes_ += len;
  } catch (const std::bad_alloc&) {
    // Out of metadata memory: the block is simply not reused.
  }
}

void Pool::InsertRange(BlockMap* m, uintptr_t start, size_t len) {
  // Areas are never adjacent (each span ends in a guard), so merged ranges stay in one area.
  const Area* a = m->area;
  const FreeRanges::Range r = ranges_.Insert(start, len, [m, a](uintptr_t absorbed) {
    ClearBit(m->start_bits, (absorbed - a->base) >> kUnitShift);
  });
  // A range from the area's start to its end (or, in the current area, to its bump) means
  // nothing in the area is live: its memory goes back to the system and the mapping stays
  // (the range is reused like any other; its pages fault in again as zero). Not before half
  // the area was handed out since the last time, so that one block allocated and freed in
  // a loop costs no madvise and page fault per cycle.
  const bool whole = r.len == a->size || (m == current_ && r.start + r.len == a->base + m->bump);
  const bool keep = shared_with_child_ && a->backing == Area::Backing::kShared;
  if (r.start == a->base && whole && m->handed_out >= r.len / 2 && !keep) {
    if (platform::DiscardPages(reinterpret_cast<void*>(a->base),
                               RoundUp(r.len, platform::PageSize()),
                               a->backing == Area::Backing::kShared)) {
      m->handed_out = 0;
    }
  }
}

void Pool::PushNewFree(BlockMap* m, uintptr_t start, size_t len) {
  SetBit(m->start_bits, (start - m->area->base) >> kUnitShift);
  PushFree(m, start, len);
}

void Pool::FlushSmallLists() {
  for (size_t units = 1; units <= kSmallUnits; ++units) {
    AddrVector list;
    list.swap(small_free_[units]);
    for (uintptr_t p : list) {
      InsertRange(OwnMapOf(p), p, units << kUnitShift);
    }
  }
  small_free_bytes_ = 0;
}

void Pool::ClearFreeLists() {
  if (small_free_bytes_ != 0) {
    for (AddrVector& list : small_free_) AddrVector().swap(list);
    small_free_bytes_ = 0;
  }
  ranges_.Clear();
}

uintptr_t Pool::Bump(size_t rsize, size_t align) {
  BlockMap* m = current_;
  if (m == nullptr) return 0;
  const Area* a = m->area;
  const uintptr_t top = a->base + m->bump;
  const uintptr_t p = RoundUp(top, align);
  if (p < top || p - a->base > a->size || a->size - (p - a->base) < rsize) return 0;
  if (p > top) PushNewFree(m, top, p - top);  // the alignment gap becomes a free block
  const size_t i = (p - a->base) >> kUnitShift;
  SetBit(m->start_bits, i);
  SetBit(m->live_bits, i);
  m->bump = p + rsize - a->base;
  m->handed_out += rsize;
  return p;
}

void Pool::RetireCurrent() {
  BlockMap* m = current_;
  if (m == nullptr) return;
  current_ = nullptr;
  const Area* a = m->area;
  if (m->bump < a->size && a->writable.load(std::memory_order_relaxed)) {
    const uintptr_t tail = a->base + m->bump;
    m->bump = a->size;
    PushNewFree(m, tail, a->size - (tail - a->base));
  }
}

bool Pool::OpenArea(size_t min_bytes) {
  if (protected_ && (flags_ & PMALLOC_POOL_GROWABLE) == 0) {
    errno = EPERM;
    return false;
  }
  // A new area is at least the pool's live bytes (up to kMaxAreaGrowth): sizes double, so
  // a pool of N bytes in small allocations has O(log N + N / 32 MiB) areas, and VMAs, rather
  // than N / refill: 16384 for 1 GiB at the default 64 KiB refill (vm.max_map_count is
  // 65530); and areas of a large pool reach whole huge pages.
  // Live bytes, not mapped: a GROWABLE pool that allocates a little after each protect
  // keeps opening refill-sized areas instead of ever larger ones.
  const size_t grown = std::min(kMaxAreaGrowth, RoundUp(live_bytes_, kGranule));
  size_t size = RoundUp(std::max({refill_, min_bytes, grown}), platform::PageSize());
  if (size >= kHugePage) size = RoundUp(size, kHugePage);
  BlockMap* m = MetaNew<BlockMap>();
  if (m == nullptr) {
    errno = ENOMEM;
    return false;
  }
  Area* a = nullptr;
  if (GetConfig().protect_shared || KeepsFile()) {  // write-rare needs its memfd in every mode
    if (file_.fd < 0 && !platform::OpenPoolFile(map_name_, &file_)) NoFile(errno);
    if (file_.fd >= 0) {
      a = Window::NewArea(this, size, map_name_, &file_);
      if (a == nullptr) {
        // EBADF: the program closed our descriptor (the number may be someone else's now);
        // otherwise the file could not grow. Either way this area is anonymous, and the
        // next one tries a fresh memfd.
        NoFile(errno);
        if (errno == EBADF) {
          file_ = platform::PoolFile{};
        } else {
          platform::ClosePoolFile(&file_);
        }
      }
    }
  }
  if (a == nullptr) a = Window::NewArea(this, size, map_name_);
  const size_t bitmap_bytes = a == nullptr ? 0 : RoundUp(a->size >> kUnitShift, 64) / 8;
  if (a != nullptr) {
    m->start_bits = static_cast<uint64_t*>(MetaAlloc(bitmap_bytes, /*zero=*/true));
    m->live_bits = static_cast<uint64_t*>(MetaAlloc(bitmap_bytes, /*zero=*/true));
  }
  if (a == nullptr || m->start_bits == nullptr || m->live_bits == nullptr) {
    const int saved = a == nullptr ? errno : ENOMEM;
    if (a != nullptr) (void)Window::DeleteArea(a);  // a failure loses address space only
    DeleteBlockMap(m);
    errno = saved;
    return false;
  }
  m->area = a;
  PublishBlockMap(a, m);  // lock-free readers may look from now on
  RetireCurrent();
  m->next = areas_;
  areas_ = m;
  current_ = m;
  protected_ = false;
  mapped_bytes_ += a->size;
  ++area_count_;
  return true;
}

void Pool::Free(const void* ptr, bool wipe) {
  Area* a = Window::AreaOf(ptr);
  if (a == nullptr || a->pool != this) FatalInvalidPfree(ptr, name_);
  FreeInArea(a, ptr, wipe);
}

void Pool::FreeInArea(Area* a, const void* ptr, bool wipe) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  SpinLockHolder h(&lock_);
  BlockMap* m = a->blocks;
  const size_t off = p - a->base;
  if ((off & (kUnit - 1)) != 0 || off >= m->bump) FatalInvalidPfree(ptr, name_);
  const size_t i = off >> kUnitShift;
  if (!TestBit(m->start_bits, i)) {
    // A freed block merged into the free range before it lost its start bit.
    if (ranges_.Contains(p)) FatalDoublePfree(ptr, name_);
    FatalInvalidPfree(ptr, name_);
  }
  if (!TestBit(m->live_bits, i)) FatalDoublePfree(ptr, name_);
  const size_t bytes = m->BlockBytes(i, m->bump);
  ClearBit(m->live_bits, i);
  live_bytes_ -= bytes;
  --live_allocs_;
  if (a->writable.load(std::memory_order_relaxed)) {
    if (wipe) explicit_bzero(reinterpret_cast<void*>(p), bytes);
    PushFree(m, p, bytes);
  } else {
    freed_after_protect_ += bytes;
  }
  ForgetBlockSite(ptr);  // a rule-tagged block's site (one load when there are none)
}

size_t Pool::UsableSize(const void* ptr) {
  Area* a = Window::AreaOf(ptr);
  if (a == nullptr) return 0;
  Pool* pool = a->pool;
  SpinLockHolder h(&pool->lock_);
  return LiveBlockBytes(a->blocks, reinterpret_cast<uintptr_t>(ptr) - a->base);
}

size_t Pool::LiveBlockBytes(const BlockMap* m, size_t off) {
  if ((off & (kUnit - 1)) != 0 || off >= m->bump) return 0;
  const size_t i = off >> kUnitShift;
  if (!TestBit(m->start_bits, i) || !TestBit(m->live_bits, i)) return 0;
  return m->BlockBytes(i, m->bump);
}

bool Pool::ResizeInPlace(const void* ptr, size_t size, size_t* old_size) {
  *old_size = 0;
  const uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  Area* a = Window::AreaOf(ptr);
  if (a == nullptr || a->pool != this) return false;
  SpinLockHolder h(&lock_);
  if (!a->writable.load(std::memory_order_relaxed)) return false;
  BlockMap* m = a->blocks;
  const size_t old_bytes = LiveBlockBytes(m, p - a->base);
  if (old_bytes == 0) return false;
  *old_size = old_bytes;
  if (size > kMaxAllocation) return false;
  const size_t rsize = RoundUp(size, align_);
  if (rsize <= old_bytes) return true;
  const size_t need = rsize - old_bytes;
  const uintptr_t end = p + old_bytes;
  if (m == current_ && end == a->base + m->bump) {  // the last block: grow into the tail
    if (a->size - m->bump < need) return false;
    m->bump = m->bump + need;
    m->handed_out += need;
    live_bytes_ += need;
    return true;
  }
  if (ranges_.At(end).len < need) return false;  // no free range there, or too short
  const FreeRanges::Range next = ranges_.TakeAt(end);
  ClearBit(m->start_bits, (end - a->base) >> kUnitShift);
  if (next.len > need) PushNewFree(m, end + need, next.len - need);
  m->handed_out += need;
  live_bytes_ += need;
  return true;
}

bool Pool::FindBlock(const void* ptr, uintptr_t* start, size_t* size, bool* live) {
  Area* a = Window::AreaOf(ptr);
  if (a == nullptr || a->blocks == nullptr) return false;
  const BlockMap* m = a->blocks;
  const size_t bump = m->bump;  // racy snapshot is fine for a report
  const size_t off = reinterpret_cast<uintptr_t>(ptr) - a->base;
  if (off >= bump) return false;
  size_t i = off >> kUnitShift;
  while (!TestBit(m->start_bits, i)) {
    if (i == 0) return false;
    --i;
  }
  *start = a->base + (i << kUnitShift);
  *size = m->BlockBytes(i, bump);
  *live = TestBit(m->live_bits, i);
  return true;
}

bool Pool::LiveBlockContaining(const Area* a, uintptr_t p, size_t n) const {
  const BlockMap* m = a->blocks;
  const size_t off = p - a->base;
  if (m == nullptr || off >= m->bump) return false;
  size_t i = off >> kUnitShift;
  while (!TestBit(m->start_bits, i)) {
    if (i == 0) return false;
    --i;
  }
  const size_t start = i << kUnitShift;
  return TestBit(m->live_bits, i) && n <= m->BlockBytes(i, m->bump) - (off - start);
}

int Pool::Prealloc(size_t size) {
  if (size > kMaxAllocation) {
    errno = ENOMEM;
    return -1;
  }
  SpinLockHolder h(&lock_);
  const BlockMap* m = current_;
  const size_t room = m == nullptr ? 0 : m->area->size - m->bump;
  if (m != nullptr && room >= size) return 0;
  if (protected_ && (flags_ & PMALLOC_POOL_GROWABLE) == 0) {
    errno = EPERM;
    return -1;
  }
  return OpenArea(RoundUp(size == 0 ? 1 : size, align_)) ? 0 : -1;
}

void Pool::NoFile(int err) {
  if (file_failed_) return;
  file_failed_ = true;
  LogLine line;
  line.Str("pmalloc: pool '")
      .Str(name_)
      .Str("': no memfd for its areas (errno ")
      .Dec(static_cast<uint64_t>(err))
      .Str("): they are private memory, copied onto a memfd when protected");
  line.Emit();
}

void Pool::CloseFile(platform::FdBatch* batch) {
  if (file_.fd < 0) return;
  if (platform::PoolFileValid(file_)) {
    platform::ClosePoolFile(&file_, batch);
  } else {
    file_ = platform::PoolFile{};  // the number is no longer ours: leave it alone
  }
}

bool Pool::ProtectArea(BlockMap* m, int* shared_err) {
  Area* a = m->area;
  // mprotect comes first, whatever the backing: a store racing protect either lands before
  // it or faults, so no completed store is ever lost. A shared area is then done: a
  // read-only MAP_SHARED mapping refuses /proc/PID/mem and ptrace writes (docs/design.md §2).
  // Any other area under protect:shared is copied onto a fresh memfd, reading memory that
  // nothing can write any more. An area that fork privatised is copied whole up to the
  // bump: in a private file mapping an untouched page reads the old file, not zero. An
  // anonymous one (no memfd was available) copies only its touched pages.
  void* base = reinterpret_cast<void*>(a->base);
  if (!platform::ProtectReadOnly(base, a->size)) return false;
  if (KeepsFile()) {
    // Onto the pool's own memfd, whose descriptor the write-rare path writes through.
    if (!WriteRare::MoveOntoPoolFile(this, m) && *shared_err == 0) *shared_err = errno;
  } else if (a->backing != Area::Backing::kShared && GetConfig().protect_shared) {
    const auto pages = a->backing == Area::Backing::kPrivateFile ? platform::CopyPages::kAll
                                                                 : platform::CopyPages::kTouched;
    if (platform::RemapSharedReadOnly(base, a->size, RoundUp(m->bump, platform::PageSize()),
                                      map_name_, pages)) {
      a->backing = Area::Backing::kShared;
    } else if (*shared_err == 0) {
      *shared_err = errno;
    }
  }
  a->writable.store(false, std::memory_order_release);
  return true;
}

int Pool::ProtectLocked(platform::FdBatch* batch) {
  // If a copy fails (no memory, no descriptor left) the area keeps its mprotect, and one
  // line says the protection is weaker.
  int err = 0;
  int shared_err = 0;
  for (BlockMap* m = areas_; m != nullptr; m = m->next) {
    Area* a = m->area;
    if (!a->writable.load(std::memory_order_relaxed)) continue;
    if (!ProtectArea(m, &shared_err) && err == 0) err = errno;
  }
  if (shared_err != 0) {
    LogLine line;
    line.Str("pmalloc: pool '")
        .Str(name_)
        .Str("': cannot move to a shared mapping (errno ")
        .Dec(static_cast<uint64_t>(shared_err))
        .Str("): protected with mprotect only, /proc/PID/mem can still write it");
    line.Emit();
  }
  current_ = nullptr;  // the rest of the current area is relinquished
  ClearFreeLists();    // protected memory is never handed out again
  if (err != 0) {
    errno = err;
    return -1;
  }
  // No writable area is left on the memfd: its descriptor goes, so nothing can pwrite the
  // protected pages through it. A GROWABLE pool's next area opens a fresh memfd. A
  // write-rare pool keeps it: pmalloc_wr_* write through it (core/write_rare.h).
  if (!KeepsFile()) CloseFile(batch);
  protected_ = true;
  return 0;
}

void Pool::LockForFork() {
  lock_.Lock();
  if (KeepsFile()) WriteRare::PrepareFork(this);  // the child's copy of the protected areas
  if (file_.fd < 0) return;
  const bool valid = platform::PoolFileValid(file_);
  for (BlockMap* m = areas_; m != nullptr; m = m->next) {
    Area* a = m->area;
    if (!a->writable.load(std::memory_order_relaxed) || a->backing != Area::Backing::kShared) {
      continue;
    }
    if (valid &&
        platform::PrivatizeArea(reinterpret_cast<void*>(a->base), a->size, file_, a->file_offset)) {
      a->backing = Area::Backing::kPrivateFile;
      continue;
    }
    shared_with_child_ = true;
    LogLine line;
    line.Str("pmalloc: pool '")
        .Str(name_)
        .Str(valid ? "': cannot make an area private before fork (errno "
                   : "': its memfd descriptor was closed by the program (errno ")
        .Dec(static_cast<uint64_t>(valid ? errno : EBADF))
        .Str("): parent and child share its writable pages");
    line.Emit();
  }
  if (!KeepsFile()) CloseFile();
}

void Pool::UnlockAfterFork() {
  if (wr_fork_pid_ != 0) WriteRare::AfterFork(this);
  // Harmless in the parent (the flag's owner raises it again if it still starves); needed in
  // the child, where its owner does not exist.
  lock_.ClearWaitersAfterFork();
  lock_.Unlock();
}

int Pool::Protect(platform::FdBatch* batch) {
  SpinLockHolder h(&lock_);
  return ProtectLocked(batch);
}

int Pool::Seal(platform::FdBatch* batch) {
  SpinLockHolder h(&lock_);
  if (ProtectLocked(batch) != 0) return -1;
  int err = 0;
  for (BlockMap* m = areas_; m != nullptr; m = m->next) {
    Area* a = m->area;
    if (a->sealed.load(std::memory_order_relaxed)) continue;
    if (platform::Seal(reinterpret_cast<void*>(a->base), a->size)) {
      a->sealed.store(true, std::memory_order_release);
    } else if (err == 0) {
      err = errno;
    }
  }
  if (err != 0) {
    errno = err;
    return -1;
  }
  sealed_ = true;  // also for an empty pool: sealed means never destroyed
  return 0;
}

void Pool::Stats(pmalloc_stats* out) {
  SpinLockHolder h(&lock_);
  *out = {};
  out->live_bytes = live_bytes_;
  out->live_allocs = live_allocs_;
  out->mapped_bytes = mapped_bytes_;
  out->freed_after_protect_bytes = freed_after_protect_;
  out->areas = area_count_;
  bool all_ro = true;
  bool all_sealed = sealed_;
  for (const BlockMap* m = areas_; m != nullptr; m = m->next) {
    all_ro = all_ro && !m->area->writable.load(std::memory_order_relaxed);
    all_sealed = all_sealed && m->area->sealed.load(std::memory_order_relaxed);
  }
  out->is_protected = (protected_ && all_ro) ? 1 : 0;
  out->is_sealed = all_sealed ? 1 : 0;
}

int Pool::UnmapAreas() {
  SpinLockHolder h(&lock_);
  bool sealed = sealed_;
  for (const BlockMap* m = areas_; m != nullptr; m = m->next) {
    sealed = sealed || m->area->sealed.load(std::memory_order_relaxed);
  }
  if (sealed) {
    errno = EPERM;
    return -1;
  }
  if (live_allocs_ != 0) {
    errno = EBUSY;
    return -1;
  }
  ClearFreeLists();
  current_ = nullptr;
  CloseFile();
  while (areas_ != nullptr) {
    BlockMap* m = areas_;
    const size_t size = m->area->size;
    if (!Window::DeleteArea(m->area)) return -1;  // errno from munmap; remaining areas kept
    mapped_bytes_ -= size;
    areas_ = m->next;
    DeleteBlockMap(m);
    --area_count_;
  }
  return 0;
}

}  // namespace pmalloc::internal
