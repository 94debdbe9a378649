// Edge cases of LogLine: truncation of long lines (one byte always kept for the newline),
// Dec widths, Hex and Ptr forms, and what Emit and Fatal write.
#include "core/log.h"

#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "core/fatal.h"
#include "gtest/gtest.h"

namespace pmalloc::internal {
namespace {

constexpr size_t kCapacity = 511;  // 512-byte buffer, one byte kept for Emit's '\n'

std::string Text(const LogLine& line) { return std::string(line.data(), line.size()); }

// What `emit` writes to stderr (fd 2), read back through a pipe.
template <typename F>
std::string Stderr(F emit) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const int saved = dup(STDERR_FILENO);
  dup2(fds[1], STDERR_FILENO);
  close(fds[1]);
  emit();
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;) out.append(buf, n);
  close(fds[0]);
  return out;
}

TEST(LogLine, StrAppendsAndNamesNull) {
  LogLine line;
  line.Str("a").Str("").Str(nullptr).Str("b");
  EXPECT_EQ(Text(line), "a(null)b");
}

TEST(LogLine, LongStrIsTruncatedKeepingRoomForTheNewline) {
  LogLine line;
  const std::string long_text(1000, 'x');
  line.Str(long_text.c_str());
  EXPECT_EQ(line.size(), kCapacity);
  EXPECT_EQ(Text(line), std::string(kCapacity, 'x'));
  // A full line takes nothing more.
  line.Str("y").Dec(7).Dec(7, 20).Hex(0xf).Ptr(&line);
  EXPECT_EQ(line.size(), kCapacity);
  const std::string written = Stderr([&] { line.Emit(); });
  EXPECT_EQ(written, std::string(kCapacity, 'x') + "\n");
  EXPECT_EQ(line.size(), kCapacity);  // Emit leaves the line as it was
}

TEST(LogLine, NumbersAreCutAtTheEndOfAFullLine) {
  LogLine dec;
  dec.Str(std::string(kCapacity - 2, '.').c_str()).Dec(12345);
  EXPECT_EQ(Text(dec).substr(kCapacity - 2), "12");  // most significant digits first
  LogLine hex;
  hex.Str(std::string(kCapacity - 3, '.').c_str()).Hex(0xabc);
  EXPECT_EQ(Text(hex).substr(kCapacity - 3), "0xa");
  LogLine pad;
  pad.Str(std::string(kCapacity - 3, '.').c_str()).Dec(9, 10);
  EXPECT_EQ(Text(pad).substr(kCapacity - 3), "   ");  // padding first, then no room
}

TEST(LogLine, DecWidths) {
  auto dec = [](uint64_t v, size_t width) {
    LogLine line;
    line.Str("[").Dec(v, width).Str("]");
    return Text(line);
  };
  EXPECT_EQ(dec(0, 0), "[0]");
  EXPECT_EQ(dec(0, 1), "[0]");
  EXPECT_EQ(dec(7, 0), "[7]");
  EXPECT_EQ(dec(42, 5), "[   42]");
  EXPECT_EQ(dec(12345, 5), "[12345]");
  EXPECT_EQ(dec(123456, 3), "[123456]");  // wider than `width`: never cut
  EXPECT_EQ(dec(UINT64_MAX, 0), "[18446744073709551615]");
  EXPECT_EQ(dec(UINT64_MAX, 22), "[  18446744073709551615]");
  LogLine plain;
  plain.Dec(1000);
  EXPECT_EQ(Text(plain), "1000");
}

TEST(LogLine, HexAndPtr) {
  auto hex = [](uintptr_t v) {
    LogLine line;
    line.Hex(v);
    return Text(line);
  };
  EXPECT_EQ(hex(0), "0x0");
  EXPECT_EQ(hex(0xf), "0xf");
  EXPECT_EQ(hex(0x10), "0x10");
  EXPECT_EQ(hex(0xdeadbeef), "0xdeadbeef");  // lower case, no leading zeros
  EXPECT_EQ(hex(UINTPTR_MAX), "0xffffffffffffffff");
  LogLine ptr;
  ptr.Ptr(nullptr).Str(" ").Ptr(reinterpret_cast<const void*>(0x7f0012345000));
  EXPECT_EQ(Text(ptr), "0x0 0x7f0012345000");
}

TEST(LogLine, EmitWritesOneLine) {
  LogLine line;
  line.Str("pmalloc: ").Str("pool '").Str("p").Str("' ").Dec(3).Str(" ").Hex(0x1000);
  EXPECT_EQ(Stderr([&] { line.Emit(); }), "pmalloc: pool 'p' 3 0x1000\n");
  LogLine empty;
  EXPECT_EQ(Stderr([&] { empty.Emit(); }), "\n");
}

// core/fatal.h builds its lines with LogLine: one line, then abort.
TEST(LogLine, FatalWritesTheLineAndAborts) {
  EXPECT_EXIT(FatalInvalidPfree(reinterpret_cast<void*>(0x1000), "p"),
              testing::KilledBySignal(SIGABRT),
              "^pmalloc: pfree\\(\\): invalid pointer 0x1000 for pool 'p'\n$");
}

}  // namespace
}  // namespace pmalloc::internal
