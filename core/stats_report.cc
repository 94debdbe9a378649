#include "core/stats_report.h"

#include <string.h>

#include "core/log.h"
#include "core/pool.h"
#include "core/registry.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc::internal {
namespace {

// Column widths: each at least its header plus one space (numbers are right-aligned).
constexpr size_t kPoolWidth = 20;
constexpr size_t kLiveAllocsWidth = 12;
constexpr size_t kLiveBytesWidth = 14;
constexpr size_t kMappedBytesWidth = 14;
constexpr size_t kAreasWidth = 7;
constexpr size_t kFreedAfterProtectWidth = 26;

// Appends `s` padded with spaces to `width` columns.
void Cell(LogLine& line, const char* s, size_t width) {
  line.Str(s);
  for (size_t n = strlen(s); n < width; ++n) line.Str(" ");
}

void CellRight(LogLine& line, const char* s, size_t width) {
  for (size_t n = strlen(s); n < width; ++n) line.Str(" ");
  line.Str(s);
}

void PrintRow(Pool* pool, void*) {
  pmalloc_stats s;
  pool->Stats(&s);
  LogLine line;
  line.Str("pmalloc: ");
  Cell(line, pool->name(), kPoolWidth);
  line.Dec(s.live_allocs, kLiveAllocsWidth);
  line.Dec(s.live_bytes, kLiveBytesWidth);
  line.Dec(s.mapped_bytes, kMappedBytesWidth);
  line.Dec(s.areas, kAreasWidth);
  line.Dec(s.freed_after_protect_bytes, kFreedAfterProtectWidth);
  line.Str(s.is_sealed ? "  sealed" : s.is_protected ? "  protected" : "  writable");
  line.Emit();
}

}  // namespace

void PrintPoolStats() {
  LogLine head;
  head.Str("pmalloc: ");
  Cell(head, "pool", kPoolWidth);
  CellRight(head, "live_allocs", kLiveAllocsWidth);
  CellRight(head, "live_bytes", kLiveBytesWidth);
  CellRight(head, "mapped_bytes", kMappedBytesWidth);
  CellRight(head, "areas", kAreasWidth);
  CellRight(head, "freed_after_protect_bytes", kFreedAfterProtectWidth);
  head.Str("  state");
  head.Emit();
  Registry::ForEachPool(PrintRow, nullptr);
}

}  // namespace pmalloc::internal
