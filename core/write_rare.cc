#include "core/write_rare.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/block_map.h"
#include "core/fatal.h"
#include "core/log.h"
#include "core/platform.h"
#include "core/pool.h"
#include "core/window.h"

namespace pmalloc::internal {

using SpinLockHolder = PoolLockHolder;

struct WriteRare::Op {
  enum class Kind { kCopy, kFill, kStore64 } kind;
  const void* src;  // kCopy
  int c;            // kFill
  uint64_t value;   // kStore64
};

namespace {

int Fail(int err) {
  errno = err;
  return -1;
}

// pwrite of `n` bytes of `c`, a page at a time from one stack buffer.
bool FillFile(const platform::PoolFile& f, size_t offset, int c, size_t n) {
  unsigned char buf[4096];
  memset(buf, c, std::min(n, sizeof(buf)));
  while (n > 0) {
    const size_t chunk = std::min(n, sizeof(buf));
    if (!platform::PoolFileWrite(f, offset, buf, chunk)) return false;
    offset += chunk;
    n -= chunk;
  }
  return true;
}

bool AllBytesAre(const void* p, int c, size_t n) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  const unsigned char v = static_cast<unsigned char>(c);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != v) return false;
  }
  return true;
}

}  // namespace

int WriteRare::Write(void* dst, size_t n, const Op& op) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(dst);
  Area* a = Window::AreaOf(dst);
  if (a == nullptr || p + n < p) return Fail(EINVAL);
  if (op.kind == Op::Kind::kCopy) {
    const uintptr_t s = reinterpret_cast<uintptr_t>(op.src);
    if (n != 0 && (op.src == nullptr || (s < p + n && p < s + n))) return Fail(EINVAL);
  }
  Pool* pool = a->pool;
  if ((pool->flags() & PMALLOC_POOL_WRITE_RARE) == 0) return Fail(EINVAL);
  SpinLockHolder h(&pool->lock_);
  // Re-checked under the lock: the area may have gone with its pool's last block.
  if (Window::AreaOf(dst) != a || !pool->LiveBlockContaining(a, p, n)) return Fail(EINVAL);
  if (pool->wr_closed_) return Fail(EPERM);
  if (a->writable.load(std::memory_order_relaxed)) {
    // Not protected yet: a plain store (under the lock, so protect cannot cut it in two).
    switch (op.kind) {
      case Op::Kind::kCopy:
        memcpy(dst, op.src, n);
        break;
      case Op::Kind::kFill:
        memset(dst, op.c, n);
        break;
      case Op::Kind::kStore64:
        __atomic_store_n(static_cast<uint64_t*>(dst), op.value, __ATOMIC_RELEASE);
        break;
    }
    return 0;
  }
  // Protected with mprotect only (the move onto the memfd failed): no write path.
  if (a->backing != Area::Backing::kShared) return Fail(EIO);
  if (!platform::PoolFileValid(pool->file_)) return Fail(EBADF);
  const size_t off = a->file_offset + (p - a->base);
  bool ok = false;
  bool same = false;
  switch (op.kind) {
    case Op::Kind::kCopy:
      ok = platform::PoolFileWrite(pool->file_, off, op.src, n);
      same = ok && memcmp(dst, op.src, n) == 0;
      break;
    case Op::Kind::kFill:
      ok = FillFile(pool->file_, off, op.c, n);
      same = ok && AllBytesAre(dst, op.c, n);
      break;
    case Op::Kind::kStore64:
      ok = platform::AliasStore64(pool->file_, off, op.value);
      same = ok && __atomic_load_n(static_cast<const uint64_t*>(dst), __ATOMIC_ACQUIRE) == op.value;
      break;
  }
  if (!ok) return -1;  // errno from pwrite or mmap; nothing was written
  if (!same) FatalWriteRareMismatch(dst, pool->name_);
  return 0;
}

int WriteRare::Memcpy(void* dst, const void* src, size_t n) {
  return Write(dst, n, Op{Op::Kind::kCopy, src, 0, 0});
}

int WriteRare::Memset(void* dst, int c, size_t n) {
  return Write(dst, n, Op{Op::Kind::kFill, nullptr, c, 0});
}

int WriteRare::AssignPtr(void* dst, const void* value) {
  if ((reinterpret_cast<uintptr_t>(dst) & 7) != 0) return Fail(EINVAL);
  return Write(dst, sizeof(uint64_t),
               Op{Op::Kind::kStore64, nullptr, 0, reinterpret_cast<uintptr_t>(value)});
}

int WriteRare::MakeReadOnly(Pool* pool) {
  if ((pool->flags() & PMALLOC_POOL_WRITE_RARE) == 0) return Fail(EINVAL);
  SpinLockHolder h(&pool->lock_);
  pool->wr_closed_ = true;  // from here on an ordinary pool: protect closes the memfd
  const int rc = pool->ProtectLocked();
  pool->CloseFile();
  return rc;
}

bool WriteRare::MoveOntoPoolFile(Pool* pool, BlockMap* m) {
  Area* a = m->area;
  if (a->backing == Area::Backing::kShared) return true;  // on the pool's memfd already
  if (pool->file_.fd < 0 && !platform::OpenPoolFile(pool->map_name_, &pool->file_)) return false;
  // An area that fork privatised is copied whole up to the bump (its untouched pages read
  // the old file, not zero); an anonymous one only its touched pages.
  const auto pages = a->backing == Area::Backing::kPrivateFile ? platform::CopyPages::kAll
                                                               : platform::CopyPages::kTouched;
  size_t offset = 0;
  if (!platform::MoveToPoolFile(reinterpret_cast<void*>(a->base), a->size, m->bump, pages,
                                &pool->file_, &offset)) {
    return false;
  }
  a->backing = Area::Backing::kShared;
  a->file_offset = offset;
  return true;
}

namespace {

// The protected areas of a write-rare pool, which live on its memfd: MAP_SHARED, so a
// forked child would share them (and their updates) with its parent.
bool OnPoolFile(const Area* a) {
  return !a->writable.load(std::memory_order_relaxed) && a->backing == Area::Backing::kShared;
}

}  // namespace

void WriteRare::PrepareFork(Pool* pool) {
  pool->wr_fork_pid_ = static_cast<int>(getpid());
  bool any = false;
  for (const BlockMap* m = pool->areas_; m != nullptr; m = m->next) {
    if (!OnPoolFile(m->area)) continue;
    // A sealed area cannot be re-mapped in the child: the child gets no write path (EPERM)
    // rather than one that writes the parent's pages.
    if (m->area->sealed.load(std::memory_order_relaxed)) return;
    any = true;
  }
  if (!any || !platform::PoolFileValid(pool->file_)) return;
  platform::PoolFile copy;
  if (!platform::OpenPoolFile(pool->map_name_, &copy)) return;
  // Same offsets as the pool's memfd, so the areas' file_offset stay right in the child.
  // Up to the bump only: the rest was never handed out and reads zero in both files.
  const size_t page = platform::PageSize();
  bool ok = platform::CopyToPoolFile(nullptr, 0, &copy, pool->file_.size);
  for (const BlockMap* m = pool->areas_; ok && m != nullptr; m = m->next) {
    const Area* a = m->area;
    if (!OnPoolFile(a)) continue;
    const size_t used = std::min(a->size, (m->bump + page - 1) & ~(page - 1));
    ok = platform::CopyToPoolFile(reinterpret_cast<const void*>(a->base), used, &copy,
                                  a->file_offset);
  }
  if (!ok) {
    platform::ClosePoolFile(&copy);
    return;
  }
  pool->wr_fork_file_ = copy;
}

void WriteRare::AfterFork(Pool* pool) {
  const bool child = static_cast<int>(getpid()) != pool->wr_fork_pid_;
  pool->wr_fork_pid_ = 0;
  if (!child) {
    platform::ClosePoolFile(&pool->wr_fork_file_);
    return;
  }
  // The child: its protected areas move onto the copy, which becomes its pool memfd; its
  // next areas go there too, at offsets its parent's file also uses for other areas.
  bool any = false;
  bool ok = pool->wr_fork_file_.fd >= 0;
  for (BlockMap* m = pool->areas_; m != nullptr; m = m->next) {
    Area* a = m->area;
    if (!OnPoolFile(a)) continue;
    any = true;
    if (ok) {
      ok = platform::MapPoolFileReadOnly(reinterpret_cast<void*>(a->base), a->size,
                                         pool->wr_fork_file_, a->file_offset);
    }
  }
  pool->CloseFile();
  if (any && ok) {
    pool->file_ = pool->wr_fork_file_;
    pool->wr_fork_file_ = platform::PoolFile{};
    return;
  }
  platform::ClosePoolFile(&pool->wr_fork_file_);
  if (!any) return;  // nothing protected yet: the next area opens a fresh memfd
  pool->wr_closed_ = true;
  LogLine line;
  line.Str("pmalloc: pool '")
      .Str(pool->name_)
      .Str(
          "': write-rare areas not separated from the parent after fork (sealed, or no memfd): "
          "pmalloc_wr_* fail with EPERM in this child");
  line.Emit();
}

}  // namespace pmalloc::internal
