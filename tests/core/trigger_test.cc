// lockdown:signal:SIG must not change a program's lifetime nor its signal delivery
// (issue 9.1): trigger_probe runs with the trigger configured.
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

extern char** environ;

namespace {

struct Probe {
  pid_t pid = -1;
  int out = -1;  // the probe's stdout
};

Probe Start(const char* mode) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::string conf = "PMALLOC_CONF=lockdown:signal:USR2";
  char* envp[] = {conf.data(), nullptr};
  char* argv[] = {const_cast<char*>(TRIGGER_PROBE), const_cast<char*>(mode), nullptr};
  Probe p;
  if (posix_spawn(&p.pid, TRIGGER_PROBE, &actions, nullptr, argv, envp) != 0) p.pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  p.out = fds[0];
  return p;
}

std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

// Waits for the probe; a probe still alive after 10 s (a hang, not a slow run: the probes
// take 100 ms) gets SIGTERM, then SIGKILL. Returns the exit code, or 128 + the signal, or
// -1 when it hung (then *ignored_term says whether SIGTERM was ignored).
int Wait(pid_t pid, bool* ignored_term = nullptr) {
  int status = 0;
  for (int i = 0; i < 1000; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    usleep(10 * 1000);
  }
  kill(pid, SIGTERM);
  bool dead = false;
  for (int i = 0; i < 200 && !dead; ++i) {
    dead = waitpid(pid, &status, WNOHANG) == pid;
    if (!dead) usleep(10 * 1000);
  }
  if (ignored_term != nullptr) *ignored_term = !dead;
  if (!dead) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  return -1;
}

// Runs the probe in `mode` to its end: its first line of output and its exit status.
struct Outcome {
  std::string line;
  int status;
};
Outcome RunProbe(const char* mode) {
  Probe p = Start(mode);
  if (p.pid <= 0) return {"cannot start the probe", -2};
  Outcome o;
  o.line = ReadLine(p.out);
  o.status = Wait(p.pid);
  close(p.out);
  return o;
}

TEST(SignalTrigger, PthreadExitFromMainStillEndsTheProcess) {
  Probe p = Start("pthread_exit");
  ASSERT_GT(p.pid, 0);
  bool ignored_term = false;
  EXPECT_EQ(Wait(p.pid, &ignored_term), 0) << (ignored_term ? "hung and ignored SIGTERM" : "");
  close(p.out);
}

TEST(SignalTrigger, LockdownAfterMainExitedThenTheProcessEnds) {
  const Outcome o = RunProbe("pthread_exit_signal");
  EXPECT_EQ(o.line, "protected=1");
  EXPECT_EQ(o.status, 0);
}

TEST(SignalTrigger, SigtermStillKills) {
  Probe p = Start("term");
  ASSERT_GT(p.pid, 0);
  ASSERT_EQ(ReadLine(p.out), "ready");
  ASSERT_EQ(kill(p.pid, SIGTERM), 0);
  EXPECT_EQ(Wait(p.pid), 128 + SIGTERM);
  close(p.out);
}

// A thread forks (as Python's test_threading does): in the child it is the only thread, and
// when it returns the child ends.
TEST(SignalTrigger, ForkFromThreadChildEnds) {
  const Outcome o = RunProbe("fork_thread");
  EXPECT_EQ(o.line, "child exit=0");
  EXPECT_EQ(o.status, 0);
}

}  // namespace
