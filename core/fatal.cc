#include "core/fatal.h"

#include <cstdlib>

#include "core/log.h"

namespace pmalloc::internal {
namespace {

[[noreturn]] void Die(LogLine& line) {
  line.Emit();
  std::abort();
}

[[noreturn]] void DieRoSection(const char* what, const void* start, const void* stop,
                               const char* module) {
  LogLine line;
  line.Str("pmalloc: ").Str(what).Str(" __ro_after_init section ").Ptr(start).Str("-").Ptr(stop);
  line.Str(" of '").Str(module).Str("'");
  Die(line);
}

}  // namespace

void FatalInvalidPfree(const void* p, const char* pool) {
  LogLine line;
  line.Str("pmalloc: pfree(): invalid pointer ").Ptr(p).Str(" for pool '").Str(pool).Str("'");
  Die(line);
}

void FatalDoublePfree(const void* p, const char* pool) {
  LogLine line;
  line.Str("pmalloc: pfree(): double free of ").Ptr(p).Str(" in pool '").Str(pool).Str("'");
  Die(line);
}

void FatalWriteRareMismatch(const void* p, const char* pool) {
  LogLine line;
  line.Str("pmalloc: write-rare update of ").Ptr(p).Str(" in pool '").Str(pool);
  line.Str("' did not read back");
  Die(line);
}

void FatalNotInPool(const char* call, const void* p) {
  LogLine line;
  line.Str("pmalloc: ").Str(call).Str("(): invalid pointer ").Ptr(p);
  line.Str(" (inside the pool window, in no live pool area)");
  Die(line);
}

void FatalRoAfterInitNotWholePages(const void* start, const void* stop, const char* module) {
  DieRoSection("not whole pages:", start, stop, module);
}

void FatalRoAfterInitNotRegistered(const void* start, const void* stop, const char* module) {
  DieRoSection("cannot register", start, stop, module);
}

void FatalRoAfterInitCopied(const char* variable, const char* module) {
  LogLine line;
  line.Str("pmalloc: __ro_after_init variable '").Str(variable).Str("' of '").Str(module);
  line.Str("' was copied into the executable (copy relocation) and would stay writable: ");
  line.Str("make it static or hidden");
  Die(line);
}

void FatalNoLibcFunction(const char* name) {
  LogLine line;
  line.Str("pmalloc: cannot find glibc's ").Str(name);
  Die(line);
}

void FatalNoLibcStartMain() {
  LogLine line;
  line.Str("pmalloc: cannot find glibc's __libc_start_main");
  Die(line);
}

}  // namespace pmalloc::internal
