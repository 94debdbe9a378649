#include "core/report_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

namespace pmalloc::internal {
namespace {

// A high descriptor number: the top of the soft limit, clear of the low numbers programs
// expect to get from open().
int HighFd() {
  struct rlimit rl;
  long top = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    top = static_cast<long>(rl.rlim_cur);
  }
  if (top > 1024) top = 1024;  // keep select(2)-range programs' descriptors low too
  const long want = top - 24;
  return static_cast<int>(want < 100 ? 100 : want);
}

int Open(const char* path, int flags) {
  const int fd = open(path, flags | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  const int high = fcntl(fd, F_DUPFD_CLOEXEC, HighFd());
  if (high < 0) return fd;  // no high number free: keep the one we have
  close(fd);
  return high;
}

// Whole-file record lock (F_WRLCK) or unlock (F_UNLCK); retried on EINTR.
int Lock(int fd, short type) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  while (fcntl(fd, type == F_UNLCK ? F_SETLK : F_SETLKW, &fl) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

int WriteAll(int fd, const char* data, size_t n, bool positioned) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = positioned ? pwrite(fd, data + done, n - done, static_cast<off_t>(done))
                                 : write(fd, data + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    done += static_cast<size_t>(w);
  }
  return 0;
}

}  // namespace

int OpenAppendFile(const char* path) { return Open(path, O_WRONLY | O_APPEND); }

int OpenRewriteFile(const char* path) { return Open(path, O_RDWR); }

int AppendLocked(int fd, const char* data, size_t n) {
  const int saved = errno;
  int err = Lock(fd, F_WRLCK);
  if (err == 0) {
    err = WriteAll(fd, data, n, false);
    (void)Lock(fd, F_UNLCK);
  }
  errno = saved;
  return err;
}

int RewriteLocked(int fd, char* old, size_t old_cap, MergeFn merge, void* arg) {
  const int saved = errno;
  int err = Lock(fd, F_WRLCK);
  if (err != 0) {
    errno = saved;
    return err;
  }
  size_t len = 0;
  while (err == 0) {
    if (len == old_cap) {
      err = EFBIG;
      break;
    }
    const ssize_t r = pread(fd, old + len, old_cap - len, static_cast<off_t>(len));
    if (r < 0) {
      if (errno != EINTR) err = errno;
      continue;
    }
    if (r == 0) break;
    len += static_cast<size_t>(r);
  }
  if (err == 0) {
    const Text text = merge(old, len, arg);
    // Written first, then cut to length: a failed write leaves the old text (a merge only
    // adds lines) rather than an empty file.
    if (text.data != nullptr) {
      err = WriteAll(fd, text.data, text.size, true);
      if (err == 0 && ftruncate(fd, static_cast<off_t>(text.size)) != 0) err = errno;
    }
  }
  (void)Lock(fd, F_UNLCK);
  errno = saved;
  return err;
}

}  // namespace pmalloc::internal
