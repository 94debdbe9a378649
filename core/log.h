// A write(2)-based logger for the malloc path and signal handlers: no heap, no stdio, no
// locks. Messages are built in a fixed stack buffer and written with one write(2) call so
// lines from different threads do not interleave.
#ifndef PMALLOC_CORE_LOG_H_
#define PMALLOC_CORE_LOG_H_

#include <cstddef>
#include <cstdint>

namespace pmalloc::internal {

class LogLine {
 public:
  LogLine() = default;
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  LogLine& Str(const char* s);
  LogLine& Dec(uint64_t v) { return Dec(v, 0); }
  // Right-aligned in `width` columns (space-padded).
  LogLine& Dec(uint64_t v, size_t width);
  LogLine& Hex(uintptr_t v);  // 0x-prefixed
  LogLine& Ptr(const void* p) { return Hex(reinterpret_cast<uintptr_t>(p)); }

  const char* data() const { return buf_; }
  size_t size() const { return len_; }

  // Appends '\n' and writes the line to stderr.
  void Emit();

 private:
  char buf_[512];
  size_t len_ = 0;
};

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_LOG_H_
