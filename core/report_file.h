// The files learn mode writes (core/learn_report.h): opened once at start-up, while the
// process still has the privileges it started with (nginx's workers later run as nobody), and
// kept as close-on-exec descriptors at high numbers so that the program's own descriptors
// are not disturbed; forked children inherit them. Writes are async-signal-safe (system
// calls only), so a report can be written from a signal handler.
//
// Exclusion between processes is a POSIX record lock (fcntl F_SETLKW on the whole file), not
// flock(2): flock locks belong to the open file description, which a forked child shares
// with its parent, so two forked workers would both "hold" one flock at once. Record locks
// belong to the process, and exclude forked siblings and unrelated runs alike.
#ifndef PMALLOC_CORE_REPORT_FILE_H_
#define PMALLOC_CORE_REPORT_FILE_H_

#include <cstddef>

namespace pmalloc::internal {

// Opens `path` for appending (O_APPEND) or for reading and rewriting, creating it (mode
// 0644) if needed, and moves the descriptor to a high number (below RLIMIT_NOFILE's soft
// limit, at least 100), close-on-exec. Returns the descriptor, or -errno. Not for signal
// handlers (it runs once, at start-up).
int OpenAppendFile(const char* path);
int OpenRewriteFile(const char* path);

// Appends `n` bytes with one write(2) while holding the file's record lock, so that
// sections of several processes never interleave (a short write is completed under the
// same lock). Returns 0 or an errno. Async-signal-safe; keeps errno.
int AppendLocked(int fd, const char* data, size_t n);

// Rewrites the file under its record lock: reads the whole file into `old` (capacity
// `old_cap`), calls merge(old, old_len, arg), which returns the new text (pointer and
// length; nullptr keeps the file as it is), writes it from offset 0 and cuts the file to its
// length (a merge that only adds lines never loses the old text on a failed write). Returns 0 or an
// errno (EFBIG when the file does not fit in `old`). Async-signal-safe when `merge` is;
// keeps errno.
struct Text {
  const char* data;
  size_t size;
};
using MergeFn = Text (*)(const char* old, size_t old_len, void* arg);
int RewriteLocked(int fd, char* old, size_t old_cap, MergeFn merge, void* arg);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_REPORT_FILE_H_
