// PMALLOC_CONF parsing (core/config.cc) and the docs generated from core/config_keys.def.
#include "core/config.h"

#include <signal.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace pmalloc::internal {
namespace {

// Parses `text` into a fresh Config and returns what it printed on stderr.
std::string Parse(const char* text, Config* c) {
  testing::internal::CaptureStderr();
  ParseConfig(text, c);
  return testing::internal::GetCapturedStderr();
}

TEST(Config, DefaultsWhenAbsent) {
  Config c;
  EXPECT_EQ(Parse(nullptr, &c), "");
  EXPECT_EQ(Parse("", &c), "");
  EXPECT_FALSE(c.disable);
  EXPECT_FALSE(c.seal);
  EXPECT_FALSE(c.stats_print);
  EXPECT_FALSE(c.lockdown.main);
  EXPECT_EQ(c.lockdown.signal, 0);
  EXPECT_TRUE(c.protect_shared);
  EXPECT_EQ(c.window, 0u);
}

TEST(Config, EveryKeyParses) {
  Config c;
  EXPECT_EQ(Parse("disable:true,seal:1,stats_print:true,lockdown:main,lockdown:signal:SIGHUP,"
                  "protect:mprotect,window:2G",
                  &c),
            "");
  EXPECT_TRUE(c.disable);
  EXPECT_TRUE(c.seal);
  EXPECT_TRUE(c.stats_print);
  EXPECT_TRUE(c.lockdown.main);  // triggers accumulate
  EXPECT_EQ(c.lockdown.signal, SIGHUP);
  EXPECT_FALSE(c.protect_shared);
  EXPECT_EQ(c.window, size_t{2} << 30);
}

TEST(Config, LockdownTriggersParse) {
  Config c;
  EXPECT_EQ(Parse("lockdown:call:listen+epoll_wait,lockdown:call:sigtimedwait,lockdown:serve,"
                  "lockdown:after:500ms,lockdown:api",
                  &c),
            "");
  EXPECT_EQ(c.lockdown.calls,
            (1u << kCallListen) | (1u << kCallEpollWait) | (1u << kCallSigtimedwait));
  EXPECT_TRUE(c.lockdown.serve);
  EXPECT_EQ(c.lockdown.after_ns, 500u * 1000 * 1000);
  EXPECT_TRUE(c.lockdown.api);
  Config d;
  EXPECT_EQ(Parse("lockdown:after:2s", &d), "");
  EXPECT_EQ(d.lockdown.after_ns, 2000u * 1000 * 1000);
  EXPECT_EQ(Parse("lockdown:after:100us", &d), "");
  EXPECT_EQ(d.lockdown.after_ns, 100u * 1000);
  EXPECT_EQ(kServeMask & (1u << kCallListen), 0u);
  EXPECT_NE(kServeMask & (1u << kCallSigwait), 0u);
}

TEST(Config, BadTriggersAreReportedAndIgnored) {
  Config c;
  EXPECT_EQ(
      Parse("lockdown:call:listen+bogus,lockdown:call:,lockdown:call:listen+,"
            "lockdown:after:5,lockdown:after:0s,lockdown:after:3h,lockdown:serving",
            &c),
      "pmalloc: PMALLOC_CONF: bad value for key 'lockdown' value 'call:listen+bogus' ignored\n"
      "pmalloc: PMALLOC_CONF: bad value for key 'lockdown' value 'call:' ignored\n"
      "pmalloc: PMALLOC_CONF: bad value for key 'lockdown' value 'call:listen+' ignored\n"
      "pmalloc: PMALLOC_CONF: bad value for key 'lockdown' value 'after:5' ignored\n"
      "pmalloc: PMALLOC_CONF: bad value for key 'lockdown' value 'after:0s' ignored\n"
      "pmalloc: PMALLOC_CONF: bad value for key 'lockdown' value 'after:3h' ignored\n"
      "pmalloc: PMALLOC_CONF: bad value for key 'lockdown' value 'serving' ignored\n");
  EXPECT_EQ(c.lockdown.calls, 0u);
  EXPECT_EQ(c.lockdown.after_ns, 0u);
  EXPECT_FALSE(c.lockdown.serve);
}

TEST(Config, LearnModeNeverSealsAndUsesMprotect) {
  Config c;
  EXPECT_EQ(Parse("learn:permissive,seal:true", &c), "");
  EXPECT_EQ(c.learn, LearnMode::kPermissive);
  testing::internal::CaptureStderr();
  ApplyLearnMode(&c);
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "pmalloc: PMALLOC_CONF: learn mode never seals: key 'seal' ignored\n");
  EXPECT_FALSE(c.seal);
  EXPECT_FALSE(c.protect_shared);
  Config d;
  EXPECT_EQ(Parse("learn:true,learn:bogus", &d),
            "pmalloc: PMALLOC_CONF: bad value for key 'learn' value 'bogus' ignored\n");
  EXPECT_EQ(d.learn, LearnMode::kOn);
  Config off;
  EXPECT_EQ(Parse("learn:false,seal:true", &off), "");
  ApplyLearnMode(&off);
  EXPECT_TRUE(off.seal);
  EXPECT_TRUE(off.protect_shared);
}

TEST(Config, LastValidValueWins) {
  Config c;
  EXPECT_EQ(Parse("seal:true,seal:false,protect:mprotect,protect:shared", &c), "");
  EXPECT_FALSE(c.seal);
  EXPECT_TRUE(c.protect_shared);
}

TEST(Config, EmptyEntriesAreSkipped) {
  Config c;
  EXPECT_EQ(Parse(",,seal:true,,", &c), "");
  EXPECT_TRUE(c.seal);
}

TEST(Config, UnknownKeyIsReportedAndIgnored) {
  Config c;
  EXPECT_EQ(Parse("bogus:1,seal:true", &c), "pmalloc: PMALLOC_CONF: unknown key 'bogus' ignored\n");
  EXPECT_TRUE(c.seal);
}

TEST(Config, MissingColonIsReported) {
  Config c;
  EXPECT_EQ(Parse("seal", &c), "pmalloc: PMALLOC_CONF: missing ':' value for key 'seal' ignored\n");
  EXPECT_FALSE(c.seal);
}

TEST(Config, BadValueKeepsTheEarlierValue) {
  Config c;
  EXPECT_EQ(Parse("seal:true,seal:yes", &c),
            "pmalloc: PMALLOC_CONF: bad value for key 'seal' value 'yes' ignored\n");
  EXPECT_TRUE(c.seal);
  EXPECT_EQ(Parse("protect:mprotect,protect:bogus", &c),
            "pmalloc: PMALLOC_CONF: bad value for key 'protect' value 'bogus' ignored\n");
  EXPECT_FALSE(c.protect_shared);
}

// Issue 9.6: a window below 1G was reported as ignored and applied anyway.
TEST(Config, WindowBelowOneGigabyteIsReportedAndNotApplied) {
  Config c;
  EXPECT_EQ(
      Parse("window:512M", &c),
      "pmalloc: PMALLOC_CONF: bad value for key 'window' value '512M' (want a size of at least "
      "1G) ignored\n");
  EXPECT_EQ(c.window, 0u);
  EXPECT_NE(Parse("window:2G,window:512M", &c), "");
  EXPECT_EQ(c.window, size_t{2} << 30);
  EXPECT_EQ(Parse("window:1G", &c), "");
  EXPECT_EQ(c.window, size_t{1} << 30);
  EXPECT_EQ(Parse("window:1048576k,window:16t", &c), "");
  EXPECT_EQ(c.window, size_t{16} << 40);
}

TEST(Config, WindowRejectsGarbageAndOverflow) {
  for (const char* bad : {"window:", "window:G", "window:12X", "window:1GG", "window:-1G",
                          "window:99999999999999999999", "window:17179869184G"}) {
    Config c;
    EXPECT_NE(Parse(bad, &c), "") << bad;
    EXPECT_EQ(c.window, 0u) << bad;
  }
}

TEST(Config, LockdownSignals) {
  struct {
    const char* text;
    int sig;
  } cases[] = {{"lockdown:signal:USR2", SIGUSR2},
               {"lockdown:signal:SIGUSR1", SIGUSR1},
               {"lockdown:signal:10", 10},
               {"lockdown:signal:TERM", SIGTERM}};
  for (const auto& t : cases) {
    Config c;
    EXPECT_EQ(Parse(t.text, &c), "") << t.text;
    EXPECT_EQ(c.lockdown.signal, t.sig) << t.text;
  }
  for (const char* bad : {"lockdown:signal:", "lockdown:signal:KILL9", "lockdown:signal:9",
                          "lockdown:signal:19", "lockdown:signal:0", "lockdown:signal:100000",
                          "lockdown:sig:USR2", "lockdown:mainx", "lockdown:"}) {
    Config c;
    EXPECT_NE(Parse(bad, &c), "") << bad;
    EXPECT_EQ(c.lockdown.signal, 0) << bad;
    EXPECT_FALSE(c.lockdown.main) << bad;
  }
}

// Issue 9.6: a long value was cut at the line's 511 bytes and the message lost its ending.
TEST(Config, LongValueIsShortenedAndTheLineKeepsItsEnding) {
  const std::string value(2000, 'x');
  const std::string text = "window:" + value;
  Config c;
  const std::string err = Parse(text.c_str(), &c);
  EXPECT_LT(err.size(), 512u);
  EXPECT_NE(err.find("value 'xxxx"), std::string::npos) << err;
  EXPECT_NE(err.find("...' (want a size of at least 1G) ignored\n"), std::string::npos) << err;
  const std::string key(3000, 'k');
  const std::string text2 = key + ":1";
  EXPECT_NE(Parse(text2.c_str(), &c).find("...' ignored\n"), std::string::npos);
}

// The docs table of PMALLOC_CONF keys is generated from the rows: this is what it must say.
std::string GeneratedTable() {
  std::ostringstream out;
  out << "| key | values | default | effect |\n|---|---|---|---|\n";
#define PMALLOC_CONF_KEY(key, field, type, initial, parser, values, dflt, doc) \
  out << "| `" #key "` | " << values << " | " << dflt << " | " << doc << " |\n";
#include "core/config_keys.def"
#undef PMALLOC_CONF_KEY
  return out.str();
}

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

constexpr char kBegin[] = "<!-- PMALLOC_CONF keys: generated from core/config_keys.def -->\n";
constexpr char kEnd[] = "<!-- end of PMALLOC_CONF keys -->";

TEST(ConfigDocs, PreloadDocTableMatchesTheRows) {
  const std::string doc = ReadFile(PMALLOC_SOURCE_DIR "/docs/preload.md");
  const size_t begin = doc.find(kBegin);
  const size_t end = doc.find(kEnd);
  ASSERT_NE(begin, std::string::npos) << "docs/preload.md lacks the marker " << kBegin;
  ASSERT_NE(end, std::string::npos) << "docs/preload.md lacks the marker " << kEnd;
  const std::string table =
      doc.substr(begin + sizeof(kBegin) - 1, end - begin - sizeof(kBegin) + 1);
  EXPECT_EQ(table, GeneratedTable()) << "paste this table into docs/preload.md:\n"
                                     << GeneratedTable();
}

TEST(Config, TaggingKeysParse) {
  Config c;
  EXPECT_EQ(c.tag, TagMode::kOff);
  EXPECT_STREQ(c.rules.path, "");
  EXPECT_EQ(Parse("tag:startup,rules:/etc/pmalloc/app.rules,wrappers:my_alloc+my_dup,"
                  "wrappers:other",
                  &c),
            "");
  EXPECT_EQ(c.tag, TagMode::kStartup);
  EXPECT_STREQ(c.rules.path, "/etc/pmalloc/app.rules");
  EXPECT_STREQ(c.wrappers.names, "my_alloc+my_dup+other");  // accumulates
  const std::string err = Parse("tag:everything,rules:,wrappers:a;b", &c);
  EXPECT_NE(err.find("bad value for key 'tag' value 'everything'"), std::string::npos) << err;
  EXPECT_NE(err.find("bad value for key 'rules' value ''"), std::string::npos) << err;
  EXPECT_NE(err.find("bad value for key 'wrappers' value 'a;b'"), std::string::npos) << err;
  EXPECT_EQ(c.tag, TagMode::kStartup);  // the earlier valid values stay
  EXPECT_STREQ(c.rules.path, "/etc/pmalloc/app.rules");
}

// README's short table names each key once at least, and no key that does not exist.
TEST(ConfigDocs, ReadmeNamesExactlyTheKeys) {
  const std::string readme = ReadFile(PMALLOC_SOURCE_DIR "/README.md");
  std::set<std::string> rows;
#define PMALLOC_CONF_KEY(key, ...) rows.insert(#key);
#include "core/config_keys.def"
#undef PMALLOC_CONF_KEY
  std::set<std::string> named;
  const size_t section = readme.find("## Configuration: `PMALLOC_CONF`");
  ASSERT_NE(section, std::string::npos) << "README.md lacks its configuration section";
  std::istringstream lines(readme.substr(section, readme.find("\n## ", section + 1) - section));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    const size_t colon = line.find(':', 3);
    const size_t tick = line.find('`', 3);
    if (colon == std::string::npos || colon > tick) continue;  // not a `key:value` row
    named.insert(line.substr(3, colon - 3));
  }
  EXPECT_EQ(named, rows);
}

}  // namespace
}  // namespace pmalloc::internal
