#include "core/log.h"

#include <unistd.h>

namespace pmalloc::internal {

LogLine& LogLine::Str(const char* s) {
  if (s == nullptr) s = "(null)";
  while (*s != '\0' && len_ + 1 < sizeof(buf_)) buf_[len_++] = *s++;
  return *this;
}

LogLine& LogLine::Dec(uint64_t v, size_t width) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t pad = n; pad < width && len_ + 1 < sizeof(buf_); ++pad) buf_[len_++] = ' ';
  while (n > 0 && len_ + 1 < sizeof(buf_)) buf_[len_++] = tmp[--n];
  return *this;
}

LogLine& LogLine::Hex(uintptr_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char tmp[2 + 2 * sizeof(v)];
  int n = 0;
  do {
    tmp[n++] = kDigits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  Str("0x");
  while (n > 0 && len_ + 1 < sizeof(buf_)) buf_[len_++] = tmp[--n];
  return *this;
}

void LogLine::Emit() {
  buf_[len_++] = '\n';  // Str/Dec/Hex always leave one byte free
  size_t done = 0;
  while (done < len_) {
    const ssize_t n = write(STDERR_FILENO, buf_ + done, len_ - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  --len_;
}

}  // namespace pmalloc::internal
