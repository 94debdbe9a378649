// The rules file (core/rules.cc): parsing, matching, bad input; and the sites table
// (core/sites.cc) the rules are decided for.
#include "core/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "core/modules.h"
#include "core/sites.h"
#include "gtest/gtest.h"

namespace pmalloc::internal {
namespace {

// Parses `text` into `rules` and returns what it printed on stderr.
std::string Parse(RuleSet* rules, const std::string& text, int* bad = nullptr) {
  testing::internal::CaptureStderr();
  const int n = rules->Parse(text.data(), text.size(), "app.rules");
  if (bad != nullptr) *bad = n;
  return testing::internal::GetCapturedStderr();
}

bool Tagged(const RuleSet& rules, std::vector<FrameRef> frames) {
  return rules.Tagged(frames.data(), static_cast<int>(frames.size()));
}

TEST(Rules, EmptyFileTagsEverything) {
  RuleSet r;
  EXPECT_EQ(Parse(&r, "# nothing\n\n   \n"), "");
  EXPECT_EQ(r.size(), 0);
  EXPECT_TRUE(Tagged(r, {{"nginx", 0x10}}));
}

TEST(Rules, ExcludeMatchesItsFramesAndNoOthers) {
  RuleSet r;
  EXPECT_EQ(Parse(&r,
                  "exclude nginx+0x4a1b2 nginx+0x3c0d0 libc.so.6+0x2f110  # ngx_palloc < main\n"
                  "exclude redis-server+0x100\n"),
            "");
  EXPECT_EQ(r.size(), 2);
  EXPECT_FALSE(Tagged(r, {{"nginx", 0x4a1b2}, {"nginx", 0x3c0d0}, {"libc.so.6", 0x2f110}}));
  // One frame differs: not this rule.
  EXPECT_TRUE(Tagged(r, {{"nginx", 0x4a1b2}, {"nginx", 0x3c0d0}, {"libc.so.6", 0x2f111}}));
  EXPECT_TRUE(Tagged(r, {{"nginx", 0x4a1b2}, {"nginx", 0x3c0d0}}));  // shorter site
  EXPECT_TRUE(Tagged(r, {{"nginx2", 0x4a1b2}, {"nginx", 0x3c0d0}, {"libc.so.6", 0x2f110}}));
  // A one-frame rule covers every site starting with that frame.
  EXPECT_FALSE(Tagged(r, {{"redis-server", 0x100}, {"redis-server", 0x2}, {"libc.so.6", 3}}));
  EXPECT_FALSE(Tagged(r, {{"redis-server", 0x100}}));
  EXPECT_TRUE(Tagged(r, {{"redis-server", 0x101}}));
}

TEST(Rules, MostSpecificWinsExcludeWinsTies) {
  RuleSet r;
  EXPECT_EQ(Parse(&r,
                  "exclude app+0x10\n"
                  "include app+0x10 app+0x20\n"
                  "exclude app+0x10 app+0x20 libc.so.6+0x30\n"
                  "include app+0x50\n"
                  "exclude app+0x50\n"),
            "");
  EXPECT_FALSE(Tagged(r, {{"app", 0x10}, {"app", 0x99}}));           // 1 frame: exclude
  EXPECT_TRUE(Tagged(r, {{"app", 0x10}, {"app", 0x20}, {"x", 1}}));  // 2 frames: include
  EXPECT_FALSE(Tagged(r, {{"app", 0x10}, {"app", 0x20}, {"libc.so.6", 0x30}}));  // 3: exclude
  EXPECT_FALSE(Tagged(r, {{"app", 0x50}}));  // include and exclude of one length: exclude
}

TEST(Rules, ModuleRules) {
  RuleSet r;
  EXPECT_EQ(Parse(&r, "exclude-module libcrypto.so.3\ninclude libcrypto.so.3+0x40\n"), "");
  EXPECT_FALSE(Tagged(r, {{"libcrypto.so.3", 0x10}, {"app", 0x1}}));
  EXPECT_TRUE(Tagged(r, {{"libcrypto.so.3", 0x40}, {"app", 0x1}}));  // a site rule first
  EXPECT_TRUE(Tagged(r, {{"app", 0x1}, {"libcrypto.so.3", 0x10}}));  // first frame counts
  RuleSet only;
  EXPECT_EQ(Parse(&only, "tag-module app\n"), "");
  EXPECT_TRUE(Tagged(only, {{"app", 0x10}}));
  EXPECT_FALSE(Tagged(only, {{"libc.so.6", 0x10}, {"app", 0x10}}));  // not in a tagged module
  EXPECT_FALSE(Tagged(only, {}));
  RuleSet both;
  EXPECT_EQ(Parse(&both, "tag-module app\nexclude-module app\n"), "");
  EXPECT_FALSE(Tagged(both, {{"app", 0x10}}));  // exclude-module before tag-module
}

TEST(Rules, TheLoadersSitesAreUntaggedUnlessARuleSaysSo) {
  const char* ld = "ld-linux-x86-64.so.2";
  RuleSet none;
  EXPECT_FALSE(none.Tagged(std::vector<FrameRef>{{ld, 0x10}}.data(), 1, ld));
  EXPECT_TRUE(none.Tagged(std::vector<FrameRef>{{"app", 0x10}, {ld, 0x10}}.data(), 2, ld));
  RuleSet r;
  EXPECT_EQ(Parse(&r, std::string("include ") + ld + "+0x10\n"), "");
  EXPECT_TRUE(r.Tagged(std::vector<FrameRef>{{ld, 0x10}}.data(), 1, ld));
  EXPECT_FALSE(r.Tagged(std::vector<FrameRef>{{ld, 0x20}}.data(), 1, ld));
  RuleSet m;
  EXPECT_EQ(Parse(&m, std::string("tag-module ") + ld + "\n"), "");
  EXPECT_TRUE(m.Tagged(std::vector<FrameRef>{{ld, 0x20}}.data(), 1, ld));
}

TEST(Rules, BadLinesNameFileLineAndValueAndAreIgnored) {
  RuleSet r;
  int bad = 0;
  const std::string err = Parse(&r,
                                "exclude app+0x10\n"
                                "exlcude app+0x20\n"
                                "exclude app-0x30\n"
                                "exclude app+0x10 app+0xzz\n"
                                "include\n"
                                "exclude a+0x1 a+0x2 a+0x3 a+0x4\n"
                                "tag-module\n"
                                "exclude-module a b\n"
                                "module app build-id xyz path /x\n"
                                "exclude +0x10\n"
                                "include app+0x40\n",
                                &bad);
  EXPECT_EQ(bad, 9);
  EXPECT_EQ(r.size(), 2);  // lines 1 and 11
  EXPECT_NE(err.find("pmalloc: rules app.rules:2: unknown directive 'exlcude', line ignored\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("app.rules:3: malformed site frame (want module+0xOFFSET) 'app-0x30', rule "
                     "ignored\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("app.rules:4: malformed site frame (want module+0xOFFSET) 'app+0xzz'"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("app.rules:5: missing site in 'include'"), std::string::npos) << err;
  EXPECT_NE(err.find("app.rules:6: more than 3 frames in"), std::string::npos) << err;
  EXPECT_NE(err.find("app.rules:7: missing name in 'tag-module'"), std::string::npos) << err;
  EXPECT_NE(err.find("app.rules:8: more than one name in"), std::string::npos) << err;
  EXPECT_NE(err.find("app.rules:9: malformed module line"), std::string::npos) << err;
  EXPECT_NE(err.find("app.rules:10: malformed site frame (want module+0xOFFSET) '+0x10'"),
            std::string::npos)
      << err;
  // One line per bad line, nothing else.
  EXPECT_EQ(static_cast<int>(std::count(err.begin(), err.end(), '\n')), 9);
  // The good rules still apply.
  EXPECT_FALSE(Tagged(r, {{"app", 0x10}}));
  EXPECT_TRUE(Tagged(r, {{"app", 0x20}}));
}

TEST(Rules, WrapperLinesAndHeaders) {
  RuleSet r;
  EXPECT_EQ(Parse(&r,
                  "module app build-id 0123abcd path /usr/bin/app\n"
                  "build-id libc.so.6 93ac61ec\n"  // the older header form
                  "wrapper my_alloc\nwrapper my_strdup # comment\n"),
            "");
  EXPECT_EQ(r.wrapper_count(), 2);
  EXPECT_STREQ(r.wrapper(0), "my_alloc");
  EXPECT_STREQ(r.wrapper(1), "my_strdup");
  EXPECT_TRUE(Tagged(r, {{"app", 1}}));  // headers decide nothing
}

// A build-id header for a loaded module with another build-id: one line, "re-learn".
TEST(Rules, BuildIdMismatchIsReportedOncePerModule) {
  InitModules();
  struct Found {
    std::string name, id;
  } found;
  ForEachModule(
      [](const char* name, const char* build_id, const char*, void* arg) {
        auto* f = static_cast<Found*>(arg);
        if (f->name.empty() && build_id[0] != '\0' && strncmp(name, "libc.so", 7) == 0) {
          *f = {name, build_id};
        }
      },
      &found);
  ASSERT_FALSE(found.name.empty()) << "libc has no build-id here";
  RuleSet r;
  EXPECT_EQ(
      Parse(&r, "module " + found.name + " build-id 00ff path /x\n" + "module " + found.name +
                    " build-id 00fe path /x\n" + "module not-loaded.so build-id 00 path /y\n"),
      "");
  testing::internal::CaptureStderr();
  EXPECT_EQ(r.CheckBuildIds("app.rules"), 1);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("pmalloc: rules app.rules:1: module '" + found.name +
                     "' was learned with build-id 00ff but "),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("app.rules:2"), std::string::npos) << err;  // one line per module
  EXPECT_NE(err.find("re-learn"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1);

  RuleSet same;
  EXPECT_EQ(Parse(&same, "module " + found.name + " build-id " + found.id + " path /x\n"), "");
  testing::internal::CaptureStderr();
  EXPECT_EQ(same.CheckBuildIds("app.rules"), 0);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(Rules, UnreadableFileIsOneLine) {
  testing::internal::CaptureStderr();
  LoadRules("/nonexistent/dir/app.rules", /*missing_ok=*/false);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err,
            "pmalloc: rules /nonexistent/dir/app.rules: cannot read it (errno 2): no rules, every "
            "start-up allocation is tagged\n");
  testing::internal::CaptureStderr();
  LoadRules("/nonexistent/dir/app.rules", /*missing_ok=*/true);  // a first learn round
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  testing::internal::CaptureStderr();
  LoadRules("/", /*missing_ok=*/true);
  err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("pmalloc: rules /: cannot read it (errno 22, not a regular file)"),
            std::string::npos)
      << err;
}

// --- the sites table -------------------------------------------------------------------

Site MakeSite(uintptr_t a, uintptr_t b, uintptr_t c, int depth) {
  Site s = {{a, b, c}, depth};
  for (int i = depth; i < kSiteFrames; ++i) s.pc[i] = 0;
  return s;
}

TEST(Sites, InterningGivesOneIdPerSite) {
  const Site a = MakeSite(0x1000, 0x2000, 0x3000, 3);
  const Site b = MakeSite(0x1000, 0x2000, 0x3001, 3);
  const Site c = MakeSite(0x1000, 0x2000, 0, 2);
  const SiteId ia = InternSite(a);
  ASSERT_NE(ia, 0u);
  EXPECT_EQ(InternSite(a), ia);
  EXPECT_NE(InternSite(b), ia);
  EXPECT_NE(InternSite(c), ia);
  EXPECT_NE(InternSite(b), InternSite(c));
  EXPECT_EQ(InternSite(MakeSite(0, 0, 0, 0)), 0u);
  ASSERT_NE(SiteById(ia), nullptr);
  EXPECT_EQ(SiteById(ia)->pc[2], 0x3000u);
  EXPECT_EQ(SiteById(0), nullptr);
  EXPECT_EQ(StatsOf(SiteCount() + 1), nullptr);
  EXPECT_EQ(StatsOf(ia)->tagged.load(), 1);  // no classifier: tagged
}

TEST(Sites, ConcurrentInterningAgrees) {
  constexpr int kThreads = 4;
  constexpr int kSites = 2000;
  std::vector<std::vector<SiteId>> ids(kThreads, std::vector<SiteId>(kSites));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &ids] {
      for (int i = 0; i < kSites; ++i) {
        const int k = (i * 7 + t * 13) % kSites;
        ids[t][k] = InternSite(MakeSite(0x500000 + k, 0x600000, 0x700000 + k, 3));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int k = 0; k < kSites; ++k) {
    for (int t = 1; t < kThreads; ++t) ASSERT_EQ(ids[t][k], ids[0][k]) << k;
    ASSERT_NE(ids[0][k], 0u);
    ASSERT_EQ(SiteById(ids[0][k])->pc[0], 0x500000u + k);
  }
}

TEST(Sites, BlockSitesAreRecordedForgottenAndReused) {
  const SiteId a = InternSite(MakeSite(0xa0, 0, 0, 1));
  const SiteId b = InternSite(MakeSite(0xb0, 0, 0, 1));
  // Enough blocks to open several table generations.
  constexpr uintptr_t kBase = 0x7f0000000000;
  constexpr int kBlocks = 200000;
  for (int i = 0; i < kBlocks; ++i) RecordBlockSite(reinterpret_cast<void*>(kBase + 16 * i), a);
  for (int i = 0; i < kBlocks; i += 2) ForgetBlockSite(reinterpret_cast<void*>(kBase + 16 * i));
  for (int i = 0; i < kBlocks; ++i) {
    ASSERT_EQ(BlockSite(reinterpret_cast<void*>(kBase + 16 * i)), i % 2 == 0 ? 0u : a) << i;
  }
  RecordBlockSite(reinterpret_cast<void*>(kBase), b);  // a reused block
  EXPECT_EQ(BlockSite(reinterpret_cast<void*>(kBase)), b);
  EXPECT_EQ(BlockSite(reinterpret_cast<void*>(kBase + 8)), 0u);  // not a block start
}

TEST(Sites, TextForms) {
  InitModules();
  // A return address inside this test's own code: module = this executable's file name.
  const auto pc = reinterpret_cast<uintptr_t>(&MakeSite) + 1;
  ModuleInfo m;
  ASSERT_TRUE(FindModule(pc, &m));
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  exe[n] = '\0';
  EXPECT_STREQ(m.path, exe);
  EXPECT_STREQ(m.name, strrchr(exe, '/') + 1);
  const Site s = MakeSite(pc, 0x10, 0, 2);
  char buf[256];
  FormatSite(s, buf, sizeof(buf));
  char want[256];
  snprintf(want, sizeof(want), "%s+0x%lx ?+0x10", m.name, static_cast<unsigned long>(pc - m.base));
  EXPECT_STREQ(buf, want);
  FormatSymbols(s, buf, sizeof(buf));
  EXPECT_NE(strstr(buf, "MakeSite"), nullptr) << buf;
  EXPECT_NE(strstr(buf, " < ?"), nullptr) << buf;
  EXPECT_EQ(FormatSite(s, buf, 5), 4u);  // truncated, NUL-terminated
  EXPECT_EQ(strlen(buf), 4u);
}

}  // namespace
}  // namespace pmalloc::internal
