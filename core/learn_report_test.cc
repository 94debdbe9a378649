// The learn report (core/learn_report.h) and its files (core/report_file.h): the rules
// merge, per-process sections appended by forked processes, concurrent rules rewrites by
// forked processes sharing one descriptor, the report's text for recorded writes, and the
// stderr line for a report that cannot be written. InitLearnReport counts once per process:
// each test that calls it does so in a forked child.
#include "core/learn_report.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/modules.h"
#include "core/report_file.h"
#include "core/sites.h"
#include "gtest/gtest.h"
#include "pmalloc/pmalloc.h"

namespace pmalloc::internal {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Waits for every child; each must have exited with status 0.
void ExpectAllExitZero(const std::vector<pid_t>& kids) {
  for (pid_t k : kids) {
    int status = 0;
    waitpid(k, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << k;
  }
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/learn_report_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    if (!dir_.empty()) (void)!system(("rm -rf " + dir_).c_str());
  }
  std::string Path(const char* name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

// Runs fn in a forked child; returns its exit status (0 = passed).
template <typename Fn>
int InChild(Fn fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Merge(const std::string& old, const std::string& add, MergeCounts* c) {
  std::vector<char> out(old.size() + add.size() + 4096);
  const Text t =
      MergeRules(old.data(), old.size(), add.data(), add.size(), out.data(), out.size(), c);
  return t.data == nullptr ? std::string("<unchanged>") : std::string(t.data, t.size);
}

TEST(MergeRules, KeepsTheOldFileAndAddsOnlyNewSitesAndModules) {
  const std::string old =
      "# mine\n"
      "wrapper my_alloc\n"
      "module nginx build-id 1234 path /usr/sbin/nginx\n"
      "exclude nginx+0x10 nginx+0x20 libc.so.6+0x30  # a < b < c; 5 writes\n";
  const std::string add =
      "module nginx build-id 1234 path /usr/sbin/nginx\n"
      "module libc.so.6 build-id abcd path /usr/lib/x86_64-linux-gnu/libc.so.6\n"
      "exclude nginx+0x10  nginx+0x20 libc.so.6+0x30  # other comment; 9 writes\n"
      "exclude nginx+0x11 nginx+0x20 libc.so.6+0x30  # new\n"
      "exclude nginx+0x11 nginx+0x20 libc.so.6+0x30  # new, twice\n";
  MergeCounts c;
  const std::string got = Merge(old, add, &c);
  EXPECT_EQ(got, old +
                     "module libc.so.6 build-id abcd path /usr/lib/x86_64-linux-gnu/libc.so.6\n"
                     "exclude nginx+0x11 nginx+0x20 libc.so.6+0x30  # new\n");
  EXPECT_EQ(c.added_excludes, 1);
  EXPECT_EQ(c.kept_excludes, 2);
  EXPECT_EQ(c.added_modules, 1);
}

TEST(MergeRules, NothingNewLeavesTheFileAlone) {
  const std::string old = "exclude a+0x1  # x\nmodule a build-id 00 path /a\n";
  MergeCounts c;
  EXPECT_EQ(Merge(old, "module a build-id 00 path /a\nexclude a+0x1\n", &c), "<unchanged>");
  EXPECT_EQ(c.kept_excludes, 1);
  EXPECT_EQ(c.added_excludes, 0);
}

TEST(MergeRules, EmptyFileGetsAHeaderAndAFileWithoutNewlineIsCompleted) {
  MergeCounts c;
  const std::string fresh = Merge("", "exclude a+0x1  # f\n", &c);
  EXPECT_EQ(fresh.rfind("# pmalloc rules", 0), 0u) << fresh;
  EXPECT_NE(fresh.find("\nexclude a+0x1  # f\n"), std::string::npos) << fresh;
  EXPECT_EQ(Merge("exclude a+0x1", "exclude b+0x2\n", &c), "exclude a+0x1\nexclude b+0x2\n");
}

TEST(MergeRules, TooSmallABufferChangesNothing) {
  char out[16];
  MergeCounts c;
  const std::string add = "exclude a+0x1 b+0x2 c+0x3  # long enough\n";
  const Text t = MergeRules("", 0, add.data(), add.size(), out, sizeof(out), &c);
  EXPECT_EQ(t.data, nullptr);
  EXPECT_TRUE(c.too_big);
}

// Sections of 8 processes (a parent's descriptor, inherited) never interleave: each
// section is one block of one process's lines.
TEST(ReportFile, ForkedProcessesAppendWholeSections) {
  TempDir tmp;
  const std::string path = tmp.Path("r.report");
  const int fd = OpenAppendFile(path.c_str());
  ASSERT_GE(fd, 100) << "a high descriptor number";
  EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  constexpr int kProcs = 8, kSections = 30, kLines = 2000;  // ~60 KiB sections
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    const pid_t pid = fork();
    if (pid == 0) {
      std::string s;
      for (int i = 0; i < kSections; ++i) {
        s = "== section " + std::to_string(p) + "\n";
        for (int l = 0; l < kLines; ++l) s += "line of process " + std::to_string(p) + "\n";
        if (AppendLocked(fd, s.data(), s.size()) != 0) _exit(1);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  ExpectAllExitZero(kids);
  close(fd);
  std::ifstream in(path);
  std::string line;
  int sections = 0, lines = 0, current = -1;
  while (std::getline(in, line)) {
    if (line.rfind("== section ", 0) == 0) {
      if (current >= 0) {
        ASSERT_EQ(lines, kLines) << "section " << sections << " cut";
      }
      current = std::stoi(line.substr(11));
      lines = 0;
      ++sections;
    } else {
      ASSERT_EQ(line, "line of process " + std::to_string(current)) << "interleaved";
      ++lines;
    }
  }
  EXPECT_EQ(lines, kLines);
  EXPECT_EQ(sections, kProcs * kSections);
}

struct AddOne {
  std::string line;
  std::vector<char> out;
};

Text AddLine(const char* old, size_t old_len, void* arg) {
  auto* a = static_cast<AddOne*>(arg);
  a->out.assign(old, old + old_len);
  a->out.insert(a->out.end(), a->line.begin(), a->line.end());
  // Widen the window between read and write, as a slow rewrite would.
  usleep(200);
  return {a->out.data(), a->out.size()};
}

// 6 forked processes sharing one descriptor (as nginx's workers share the master's) each
// add 25 lines, one read-modify-write each: none is lost. A lock on the open file
// description (flock) would let them all in at once and lose updates.
TEST(ReportFile, ForkedProcessesRewriteWithoutLosingLines) {
  TempDir tmp;
  const std::string path = tmp.Path("r.rules");
  const int fd = OpenRewriteFile(path.c_str());
  ASSERT_GE(fd, 0);
  constexpr int kProcs = 6, kLinesEach = 25;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    const pid_t pid = fork();
    if (pid == 0) {
      std::vector<char> buf(1 << 20);
      for (int i = 0; i < kLinesEach; ++i) {
        AddOne a{"exclude p" + std::to_string(p) + "+0x" + std::to_string(i) + "\n", {}};
        if (RewriteLocked(fd, buf.data(), buf.size(), AddLine, &a) != 0) _exit(1);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  ExpectAllExitZero(kids);
  close(fd);
  const std::string text = Slurp(path);
  EXPECT_EQ(Count(text, "exclude "), kProcs * kLinesEach) << text;
  for (int p = 0; p < kProcs; ++p) {
    for (int i = 0; i < kLinesEach; ++i) {
      EXPECT_EQ(Count(text, "exclude p" + std::to_string(p) + "+0x" + std::to_string(i) + "\n"), 1);
    }
  }
}

TEST(ReportFile, RewriteOfAFileTooBigForTheBufferFailsAndKeepsIt) {
  TempDir tmp;
  const std::string path = tmp.Path("big.rules");
  {
    std::ofstream f(path);
    f << std::string(5000, 'x');
  }
  const int fd = OpenRewriteFile(path.c_str());
  ASSERT_GE(fd, 0);
  char buf[4096];
  AddOne a{"exclude y\n", {}};
  EXPECT_EQ(RewriteLocked(fd, buf, sizeof(buf), AddLine, &a), EFBIG);
  close(fd);
  EXPECT_EQ(Slurp(path).size(), 5000u);
}

// Three return addresses in this binary, for a site that FormatSite can name.
__attribute__((noinline)) void FrameA() { asm volatile(""); }
__attribute__((noinline)) void FrameB() { asm volatile(""); }
__attribute__((noinline)) void FrameC() { asm volatile(""); }

Site SiteOf(void (*a)(), void (*b)(), void (*c)()) {
  Site s = {};
  s.pc[0] = reinterpret_cast<uintptr_t>(a) + 1;
  s.pc[1] = reinterpret_cast<uintptr_t>(b) + 1;
  s.pc[2] = reinterpret_cast<uintptr_t>(c) + 1;
  s.depth = 3;
  return s;
}

// One run of a learning process: `written` gets two recorded writes in one 48-byte block of
// a pool, `kept` is tagged and never written. Returns 0 when the report and rules are right.
int LearnRun(const std::string& report, const std::string& rules, const Site& written,
             const Site& kept, LearnMode mode) {
  InitLearnReport(mode, report.c_str(), rules.c_str());
  const SiteId w = InternSite(written), k = InternSite(kept);
  if (w == 0 || k == 0) return 77;  // no site table
  StatsOf(w)->allocs = 1;
  StatsOf(w)->bytes = 48;
  StatsOf(w)->tagged = 1;
  StatsOf(k)->allocs = 3;
  StatsOf(k)->bytes = 300;
  StatsOf(k)->tagged = 1;
  pmalloc_pool* pool = pmalloc_create_pool("learn-report-test", 0, 0, 0);
  char* block = static_cast<char*>(pmalloc(pool, 48));
  if (block == nullptr) return 10;
  RecordBlockSite(block, w);
  ObserveLearnedWrite(block + 8, reinterpret_cast<uintptr_t>(&FrameA), "store");
  ObserveLearnedWrite(block + 16, reinterpret_cast<uintptr_t>(&FrameB), "read");
  WriteLearnReport("exit");
  return 0;
}

std::string SiteText(const Site& s) {
  InitModules();
  char buf[512];
  FormatSite(s, buf, sizeof(buf));
  return buf;
}

TEST(LearnReport, ReportAndRulesOfTwoRunsAddUp) {
  TempDir tmp;
  const std::string report = tmp.Path("app.rules.report");
  const std::string rules = tmp.Path("app.rules");
  const Site one = SiteOf(FrameA, FrameB, FrameC), two = SiteOf(FrameB, FrameC, FrameA);
  const Site kept = SiteOf(FrameC, FrameA, FrameB);
  int rc = InChild([&] { return LearnRun(report, "", one, kept, LearnMode::kOn); });
  if (rc == 77) GTEST_SKIP() << "core/sites.cc has no site table yet";
  // The rules path given: report beside it by default.
  ASSERT_EQ(InChild([&] { return LearnRun("", rules, one, kept, LearnMode::kOn); }), 0);
  ASSERT_EQ(InChild([&] { return LearnRun("", rules, two, kept, LearnMode::kOn); }), 0);
  ASSERT_EQ(InChild([&] { return LearnRun("", rules, one, kept, LearnMode::kOn); }), 0);

  const std::string r = Slurp(report);
  EXPECT_EQ(Count(r, "== pmalloc learn report: pid "), 4) << r;  // the first run's too
  EXPECT_NE(r.find("mode: learn:true; no rules file written"), std::string::npos) << r;
  EXPECT_NE(r.find("mode: learn:true; rules file " + rules + ": 1 exclude lines added, 0 already"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("start-up heap: 4 allocations, 348 bytes, 2 sites\n"), std::string::npos) << r;
  EXPECT_NE(
      r.find(
          "tagged, not locked (no lockdown yet): 4 allocations, 348 bytes (100.0 % of the bytes)"),
      std::string::npos)
      << r;
  EXPECT_NE(r.find("written after lockdown: 1 sites, 1 blocks, 48 bytes of pool blocks; 2 writes "
                   "(0 outside"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("stayed read-only: 3 allocations, 300 bytes (86.2 %"), std::string::npos) << r;
  EXPECT_NE(r.find("protected with the learned rules: 86.2 % of the bytes, 75.0 % of the "
                   "allocations (300 of 348 bytes, 3 of 4 allocations"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("        2 writes  48 bytes of blocks written; 1 allocations, 48 bytes  " +
                   SiteText(one)),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("first write by pmalloc::internal::(anonymous namespace)::FrameA() ["),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("(store), thread "), std::string::npos) << r;

  const std::string f = Slurp(rules);
  EXPECT_EQ(Count(f, "exclude " + SiteText(one) + "  # "), 1) << f;
  EXPECT_EQ(Count(f, "exclude " + SiteText(two) + "  # "), 1) << f;
  EXPECT_EQ(Count(f, "exclude " + SiteText(kept)), 0) << f;
  EXPECT_EQ(Count(f, "\nmodule learn_report_test build-id "), 1) << f;
}

TEST(LearnReport, PermissiveLeavesTheRulesFileAlone) {
  TempDir tmp;
  const std::string rules = tmp.Path("app.rules");
  {
    std::ofstream f(rules);
    f << "exclude x+0x1\n";
  }
  const Site one = SiteOf(FrameA, FrameB, FrameC), kept = SiteOf(FrameC, FrameA, FrameB);
  const int rc = InChild([&] { return LearnRun("", rules, one, kept, LearnMode::kPermissive); });
  if (rc == 77) GTEST_SKIP() << "core/sites.cc has no site table yet";
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(Slurp(rules), "exclude x+0x1\n");
  const std::string r = Slurp(rules + ".report");
  EXPECT_NE(r.find("mode: learn:permissive (records only: the rules file is not changed)"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("written after lockdown: 1 sites"), std::string::npos) << r;
}

// Runs fn in a child with stderr captured; returns what it wrote.
template <typename Fn>
std::string StderrOf(Fn fn) {
  int p[2];
  if (pipe(p) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 2);
    fn();
    _exit(0);
  }
  close(p[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  waitpid(pid, nullptr, 0);
  return out;
}

TEST(LearnReport, AnUnwritableReportIsOneLineOnStderrAtExit) {
  const std::string err = StderrOf([] {
    InitLearnReport(LearnMode::kOn, "/nonexistent-dir/app.report", "/nonexistent-dir/app.rules");
    FinishLearnReport();
  });
  EXPECT_EQ(Count(err,
                  "pmalloc: learn report: cannot open the report "
                  "'/nonexistent-dir/app.report': No such file or directory (errno 2)\n"),
            1)
      << err;
  EXPECT_EQ(Count(err,
                  "pmalloc: learn report: cannot open the rules file "
                  "'/nonexistent-dir/app.rules': No such file or directory (errno 2)\n"),
            1)
      << err;
  EXPECT_EQ(Count(err, "\n"), 2) << err;
}

TEST(LearnReport, ReadOnlyReportFileIsNamedToo) {
  if (geteuid() == 0) GTEST_SKIP() << "root opens a 0444 file for writing";
  TempDir tmp;
  const std::string report = tmp.Path("ro.report");
  { std::ofstream f(report); }
  chmod(report.c_str(), 0444);
  const std::string err = StderrOf([&] {
    InitLearnReport(LearnMode::kPermissive, report.c_str(), "");
    FinishLearnReport();
  });
  EXPECT_NE(err.find("cannot open the report '" + report + "': Permission denied"),
            std::string::npos)
      << err;
}

// Threads recording writes to the same blocks at once (the observer runs in each thread's
// signal handler): every write is counted, every block's bytes once.
int RacingObservers() {
  TempDir tmp;
  const std::string report = tmp.Path("race.report");
  InitLearnReport(LearnMode::kOn, report.c_str(), "");
  const SiteId id = InternSite(SiteOf(FrameA, FrameC, FrameB));
  if (id == 0) return 77;
  StatsOf(id)->tagged = 1;
  pmalloc_pool* pool = pmalloc_create_pool("learn-report-race", 0, 0, 0);
  constexpr int kBlocks = 16384, kThreads = 2, kRounds = 5;
  std::vector<char*> blocks;
  for (int i = 0; i < kBlocks; ++i) {
    char* b = static_cast<char*>(pmalloc(pool, 32));
    if (b == nullptr) return 10;
    RecordBlockSite(b, id);
    blocks.push_back(b);
  }
  // The first write of each block: all threads meet at a per-block barrier and then write
  // it at once; later rounds write without meeting.
  std::vector<std::atomic<int>> arrived(kBlocks);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        for (int i = 0; i < kBlocks; ++i) {
          if (r == 0) {
            arrived[i].fetch_add(1);
            while (arrived[i].load() < kThreads) std::this_thread::yield();
          }
          ObserveLearnedWrite(blocks[i] + t, reinterpret_cast<uintptr_t>(&FrameB), "store");
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  const SiteStats* s = StatsOf(id);
  if (s->writes.load() != uint64_t{kThreads} * kRounds * kBlocks) return 11;
  if (s->written_bytes.load() != uint64_t{kBlocks} * 32) return 12;
  char buf[1 << 14];
  FormatLearnReport("test", buf, sizeof(buf));
  if (strstr(buf,
             "written after lockdown: 1 sites, 16384 blocks, 524288 bytes of pool blocks; "
             "163840 writes") == nullptr) {
    fprintf(stderr, "%s", buf);
    return 13;
  }
  return 0;
}

// A check-then-store set instead of the compare-and-swap double-counted blocks in 2 of 4
// runs of one child: four children (fresh sets) make a miss unlikely.
TEST(LearnReport, RacingObserversCountEveryWriteAndEachBlockOnce) {
  for (int run = 0; run < 4; ++run) {
    const int rc = InChild(RacingObservers);
    if (rc == 77) GTEST_SKIP() << "no site table";
    ASSERT_EQ(rc, 0) << "run " << run;
  }
}

}  // namespace
}  // namespace pmalloc::internal
