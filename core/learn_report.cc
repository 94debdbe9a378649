#include "core/learn_report.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "absl/base/attributes.h"
#include "absl/debugging/symbolize.h"
#include "core/config.h"
#include "core/fault_report.h"
#include "core/log.h"
#include "core/modules.h"
#include "core/platform.h"
#include "core/pool.h"
#include "core/registry.h"
#include "core/sites.h"
#include "core/write_observer.h"

namespace pmalloc::internal {
namespace {

// Fixed buffers, mapped once at start-up (MAP_NORESERVE: untouched pages cost nothing).
constexpr size_t kReportCap = 2 << 20;     // one process's report section
constexpr size_t kRulesCap = 2 << 20;      // the rules file as read, and as rewritten
constexpr size_t kAddCap = 1 << 20;        // the rules lines of this process
constexpr size_t kMaxIds = 1 << 17;        // written sites sorted for the report
constexpr size_t kWrittenSlots = 1 << 16;  // the set of written blocks (open addressing)
constexpr size_t kPathCap = 4096;

struct State {
  bool on = false;
  bool learn = false;       // learn:true or learn:permissive
  bool permissive = false;  // learn:permissive: the rules file is left alone
  int report_fd = -1;       // -1: none configured; -2: could not be opened
  int rules_fd = -1;
  int report_open_err = 0;
  int rules_open_err = 0;
  char report_path[kPathCap];
  char rules_path[kPathCap];
  char exe[kPathCap];
  char* report_buf = nullptr;
  char* rules_old = nullptr;
  char* rules_new = nullptr;
  char* rules_add = nullptr;
  SiteId* ids = nullptr;
  std::atomic<uintptr_t>* written = nullptr;  // block starts; 0 = empty slot
};
ABSL_CONST_INIT State state = {};

ABSL_CONST_INIT std::atomic<bool> writing{false};
ABSL_CONST_INIT std::atomic<uint64_t> total_writes{0};
ABSL_CONST_INIT std::atomic<uint64_t> unattributed_writes{0};  // no tagged block or no site
ABSL_CONST_INIT std::atomic<uint64_t> written_blocks{0};
ABSL_CONST_INIT std::atomic<uint64_t> written_set_full{0};
ABSL_CONST_INIT std::atomic<int> report_write_err{0};
ABSL_CONST_INIT std::atomic<int> rules_write_err{0};
// What the last rules rewrite did, for the report.
ABSL_CONST_INIT MergeCounts last_merge = {};
ABSL_CONST_INIT std::atomic<bool> merged{false};

// A bounded text builder over a caller's buffer; output past the end is dropped and
// remembered (the report says it was cut).
class Out {
 public:
  Out(char* buf, size_t cap) : buf_(buf), cap_(cap) {}
  Out& Str(const char* s) {
    if (s == nullptr) s = "(null)";
    return Mem(s, strlen(s));
  }
  Out& Mem(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i) Chr(s[i]);
    return *this;
  }
  Out& Chr(char c) {
    if (len_ + 1 < cap_) {
      buf_[len_++] = c;
    } else {
      cut_ = true;
    }
    return *this;
  }
  Out& Dec(uint64_t v, int width = 0) {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    for (int pad = n; pad < width; ++pad) Chr(' ');
    while (n > 0) Chr(tmp[--n]);
    return *this;
  }
  Out& Dec2(uint64_t v) { return Chr(static_cast<char>('0' + v / 10 % 10)).Chr('0' + v % 10); }
  Out& Hex(uintptr_t v) {
    char tmp[20];
    int n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v & 0xf];
      v >>= 4;
    } while (v != 0);
    Str("0x");
    while (n > 0) Chr(tmp[--n]);
    return *this;
  }
  // "85.5 %" (one decimal, rounded); "n/a" when whole is 0.
  Out& Pct(uint64_t part, uint64_t whole) {
    if (whole == 0) return Str("n/a");
    const unsigned __int128 permille =
        (static_cast<unsigned __int128>(part) * 1000 + whole / 2) / whole;
    const uint64_t p = static_cast<uint64_t>(permille);
    return Dec(p / 10).Chr('.').Dec(p % 10).Str(" %");
  }
  size_t size() const { return len_; }
  bool cut() const { return cut_; }
  const char* data() const { return buf_; }
  // NUL-terminates (there is always room) and returns the length.
  size_t Finish() {
    buf_[len_] = '\0';
    return len_;
  }

 private:
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
  bool cut_ = false;
};

int Tid() { return static_cast<int>(syscall(SYS_gettid)); }

// True when `start` was not in the set of written blocks (and is now). Lock-free.
bool MarkWritten(uintptr_t start) {
  if (state.written == nullptr) return false;
  uint64_t h = (start >> 4) * 0x9E3779B97F4A7C15ull;
  for (size_t probe = 0; probe < kWrittenSlots; ++probe, ++h) {
    std::atomic<uintptr_t>& slot = state.written[(h >> 40) % kWrittenSlots];
    uintptr_t cur = slot.load(std::memory_order_acquire);
    if (cur == start) return false;
    if (cur == 0) {
      if (slot.compare_exchange_strong(cur, start, std::memory_order_acq_rel)) return true;
      if (cur == start) return false;
    }
  }
  written_set_full.fetch_add(1, std::memory_order_relaxed);
  return false;
}

// "2026-12-02 06:31:07 UTC", from the civil-from-days algorithm (gmtime_r is not
// async-signal-safe).
void Utc(Out& o) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const int64_t secs = ts.tv_sec;
  int64_t days = secs / 86400;
  const int64_t rem = secs % 86400;
  days += 719468;
  const int64_t era = days / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  o.Dec(static_cast<uint64_t>(y)).Chr('-').Dec2(static_cast<uint64_t>(m)).Chr('-');
  o.Dec2(static_cast<uint64_t>(d)).Chr(' ').Dec2(static_cast<uint64_t>(rem / 3600)).Chr(':');
  o.Dec2(static_cast<uint64_t>(rem / 60 % 60)).Chr(':').Dec2(static_cast<uint64_t>(rem % 60));
  o.Str(" UTC");
}

struct Totals {
  uint64_t sites = 0, allocs = 0, bytes = 0;
  uint64_t tagged_allocs = 0, tagged_bytes = 0;
  uint64_t written_sites = 0, written_bytes = 0, writes = 0;
  uint64_t kept_allocs = 0, kept_bytes = 0;  // tagged sites never written
  // Requested bytes of tagged sites that were not written: a written site's requested bytes
  // less its written blocks' sizes (pool block sizes, rounded up to the size class, so
  // clamped at the site's bytes).
  uint64_t ro_bytes = 0;
};

Totals Sum() {
  Totals t;
  const uint32_t n = SiteCount();
  for (SiteId id = 1; id <= n; ++id) {
    const SiteStats* s = StatsOf(id);
    if (s == nullptr) continue;
    const uint64_t allocs = s->allocs.load(std::memory_order_relaxed);
    const uint64_t bytes = s->bytes.load(std::memory_order_relaxed);
    const uint64_t writes = s->writes.load(std::memory_order_relaxed);
    ++t.sites;
    t.allocs += allocs;
    t.bytes += bytes;
    const bool tagged = s->tagged.load(std::memory_order_relaxed) != 0;
    const uint64_t written = s->written_bytes.load(std::memory_order_relaxed);
    if (tagged) {
      t.tagged_allocs += allocs;
      t.tagged_bytes += bytes;
      t.ro_bytes += bytes > written ? bytes - written : 0;
    }
    if (writes != 0) {
      ++t.written_sites;
      t.writes += writes;
      t.written_bytes += written;
    } else if (tagged) {
      t.kept_allocs += allocs;
      t.kept_bytes += bytes;
    }
  }
  return t;
}

// The written sites, most writes first (a shell sort: no allocation, no recursion).
size_t WrittenSitesByWrites(SiteId* ids, size_t cap) {
  size_t n = 0;
  const uint32_t count = SiteCount();
  for (SiteId id = 1; id <= count && n < cap; ++id) {
    const SiteStats* s = StatsOf(id);
    if (s != nullptr && s->writes.load(std::memory_order_relaxed) != 0) ids[n++] = id;
  }
  auto writes = [](SiteId id) { return StatsOf(id)->writes.load(std::memory_order_relaxed); };
  for (size_t gap = n / 2; gap > 0; gap /= 2) {
    for (size_t i = gap; i < n; ++i) {
      const SiteId v = ids[i];
      const uint64_t w = writes(v);
      size_t j = i;
      for (; j >= gap && writes(ids[j - gap]) < w; j -= gap) ids[j] = ids[j - gap];
      ids[j] = v;
    }
  }
  return n;
}

void AppendSite(Out& o, const Site& site) {
  char text[512];
  FormatSite(site, text, sizeof(text));
  o.Str(text);
}

void AppendSymbols(Out& o, const Site& site) {
  char text[768];
  FormatSymbols(site, text, sizeof(text));
  o.Str(text);
}

const char* ModeName() {
  if (!state.learn) return "enforcing";
  return state.permissive ? "learn:permissive" : "learn:true";
}

// The modules the written sites name ("nginx", "libc.so.6"): the text before the last '+'
// of each frame of FormatSite's text.
constexpr int kMaxModules = 64;
struct ModuleNames {
  char name[kMaxModules][256] = {};
  int n = 0;
  void Add(const char* s, size_t len) {
    if (len == 0 || len >= sizeof(name[0])) return;
    for (int i = 0; i < n; ++i) {
      if (strlen(name[i]) == len && memcmp(name[i], s, len) == 0) return;
    }
    if (n == kMaxModules) return;
    memcpy(name[n], s, len);
    name[n][len] = '\0';
    ++n;
  }
  bool Has(const char* s) const {
    for (int i = 0; i < n; ++i) {
      if (strcmp(name[i], s) == 0) return true;
    }
    return false;
  }
};

void AddModulesOf(const char* site_text, ModuleNames* m) {
  const char* p = site_text;
  while (*p != '\0') {
    while (*p == ' ') ++p;
    const char* end = p;
    while (*end != '\0' && *end != ' ') ++end;
    const char* plus = nullptr;
    for (const char* q = p; q < end; ++q) {
      if (*q == '+') plus = q;
    }
    if (plus != nullptr) m->Add(p, static_cast<size_t>(plus - p));
    p = end;
  }
}

// 16 KiB: static, not on a signal handler's stack (one report at a time: `writing`).
ABSL_CONST_INIT ModuleNames module_names = {};

struct ModuleLines {
  const ModuleNames* names;
  Out* out;
};

void EmitModule(const char* name, const char* build_id, const char* path, void* arg) {
  auto* ml = static_cast<ModuleLines*>(arg);
  // A module without a build-id, or a path with a blank (the line is blank-separated),
  // gets no header: core/rules.h would take it as a bad line.
  if (!ml->names->Has(name) || build_id == nullptr || build_id[0] == '\0' ||
      strpbrk(path, " \t") != nullptr) {
    return;
  }
  ml->out->Str("module ").Str(name).Str(" build-id ").Str(build_id);
  ml->out->Str(" path ").Str(path).Chr('\n');
}

// --- The rules text merge ---------------------------------------------------------------

struct Line {
  const char* p;
  size_t n;
};

// The next line of [*p, end) (without its '\n'); false at the end.
bool NextLine(const char** p, const char* end, Line* line) {
  if (*p >= end) return false;
  const char* nl = static_cast<const char*>(memchr(*p, '\n', static_cast<size_t>(end - *p)));
  const char* stop = nl == nullptr ? end : nl;
  *line = {*p, static_cast<size_t>(stop - *p)};
  *p = nl == nullptr ? end : nl + 1;
  return true;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// The key of a rules line: for "exclude SITE  # comment" the site's frames, for "module
// NAME ..." the name; the kind is 'e', 'm' or 0 (any other line).
char KeyOf(Line l, Line* key) {
  const char* p = l.p;
  const char* end = l.p + l.n;
  while (p < end && IsSpace(*p)) ++p;
  const char* word = p;
  while (p < end && !IsSpace(*p)) ++p;
  const size_t wn = static_cast<size_t>(p - word);
  char kind = 0;
  if (wn == 7 && memcmp(word, "exclude", 7) == 0) kind = 'e';
  if (wn == 6 && memcmp(word, "module", 6) == 0) kind = 'm';
  if (kind == 0) return 0;
  while (p < end && IsSpace(*p)) ++p;
  const char* k = p;
  const char* stop = static_cast<const char*>(memchr(p, '#', static_cast<size_t>(end - p)));
  if (stop == nullptr) stop = end;
  if (kind == 'm') {  // the name only
    while (p < stop && !IsSpace(*p)) ++p;
    stop = p;
  }
  while (stop > k && IsSpace(stop[-1])) --stop;
  *key = {k, static_cast<size_t>(stop - k)};
  return key->n == 0 ? 0 : kind;
}

// Equal after collapsing runs of blanks.
bool SameKey(Line a, Line b) {
  size_t i = 0, j = 0;
  while (i < a.n && j < b.n) {
    if (IsSpace(a.p[i]) && IsSpace(b.p[j])) {
      while (i < a.n && IsSpace(a.p[i])) ++i;
      while (j < b.n && IsSpace(b.p[j])) ++j;
      continue;
    }
    if (a.p[i] != b.p[j]) return false;
    ++i;
    ++j;
  }
  return i == a.n && j == b.n;
}

bool HasKey(const char* text, size_t len, char kind, Line key) {
  const char* p = text;
  const char* end = text + len;
  Line l, k;
  while (NextLine(&p, end, &l)) {
    if (KeyOf(l, &k) == kind && SameKey(k, key)) return true;
  }
  return false;
}

struct RewriteArg {
  const char* add;
  size_t add_len;
  MergeCounts counts;
};

Text MergeIntoFile(const char* old, size_t old_len, void* arg) {
  auto* a = static_cast<RewriteArg*>(arg);
  return MergeRules(old, old_len, a->add, a->add_len, state.rules_new, kRulesCap, &a->counts);
}

void WriteSection(const char* why) {
  if (state.report_fd == -2 || state.report_buf == nullptr) return;
  const size_t n = FormatLearnReport(why, state.report_buf, kReportCap);
  const int fd = state.report_fd >= 0 ? state.report_fd : STDERR_FILENO;
  const int err = AppendLocked(fd, state.report_buf, n);
  if (err != 0) report_write_err.store(err, std::memory_order_relaxed);
}

void WriteRules() {
  if (!state.learn || state.permissive || state.rules_fd < 0 || state.rules_add == nullptr) {
    return;
  }
  RewriteArg arg = {state.rules_add, FormatLearnedRules(state.rules_add, kAddCap), {}};
  if (arg.add_len == 0) return;
  const int err = RewriteLocked(state.rules_fd, state.rules_old, kRulesCap, MergeIntoFile, &arg);
  if (err != 0) rules_write_err.store(err, std::memory_order_relaxed);
  last_merge = arg.counts;
  merged.store(true, std::memory_order_release);
}

void OnReportSignal() { WriteLearnReport("SIGUSR1"); }

void CopyPath(char* dst, const char* src) {
  dst[0] = '\0';
  if (src == nullptr) return;
  const size_t n = strlen(src);
  if (n >= kPathCap) return;
  memcpy(dst, src, n + 1);
}

void Say(const char* what, const char* path, int err) {
  LogLine line;
  line.Str("pmalloc: learn report: cannot ").Str(what).Str(" '").Str(path).Str("': ");
  line.Str(strerror(err)).Str(" (errno ").Dec(static_cast<uint64_t>(err)).Str(")");
  line.Emit();
}

__attribute__((constructor)) void StartLearnReport() {
  const Config& c = GetConfig();
  InitLearnReport(c.learn, c.report.path, c.rules.path);
}

// Destructors of libpmalloc run after the program's atexit handlers: the final counts.
__attribute__((destructor)) void EndLearnReport() { FinishLearnReport(); }

}  // namespace

void ObserveLearnedWrite(const void* addr, uintptr_t pc, const char* via) {
  total_writes.fetch_add(1, std::memory_order_relaxed);
  uintptr_t start = 0;
  size_t size = 0;
  bool live = false;
  SiteStats* s = nullptr;
  if (Pool::FindBlock(addr, &start, &size, &live)) {
    s = StatsOf(BlockSite(reinterpret_cast<const void*>(start)));
  }
  if (s == nullptr) {
    unattributed_writes.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  s->writes.fetch_add(1, std::memory_order_relaxed);
  if (MarkWritten(start)) {
    written_blocks.fetch_add(1, std::memory_order_relaxed);
    s->written_bytes.fetch_add(size, std::memory_order_relaxed);
  }
  uintptr_t none = 0;
  if (s->first_write_pc.compare_exchange_strong(none, pc, std::memory_order_relaxed)) {
    s->first_write_via.store(via, std::memory_order_relaxed);
    s->first_write_tid.store(Tid(), std::memory_order_relaxed);
  }
}

size_t FormatLearnReport(const char* why, char* buf, size_t cap) {
  Out o(buf, cap);
  const Totals t = Sum();
  o.Str("== pmalloc learn report: pid ").Dec(static_cast<uint64_t>(getpid())).Str(", ");
  o.Str(state.exe[0] != '\0' ? state.exe : "?").Str(", ");
  Utc(o);
  o.Str(", at ").Str(why).Str(" ==\n");

  o.Str("mode: ").Str(ModeName());
  if (state.learn && state.permissive) {
    o.Str(" (records only: the rules file is not changed)");
  } else if (state.learn && state.rules_fd >= 0 && merged.load(std::memory_order_acquire)) {
    o.Str("; rules file ").Str(state.rules_path).Str(": ").Dec(last_merge.added_excludes);
    o.Str(" exclude lines added, ").Dec(last_merge.kept_excludes).Str(" already there");
    if (last_merge.too_big) o.Str(" (NOT rewritten: too big)");
  } else if (state.learn && state.rules_fd < 0) {
    o.Str("; no rules file written");
  } else if (!state.learn && state.rules_path[0] != '\0') {
    o.Str(" with rules ").Str(state.rules_path);
  }
  o.Chr('\n');
  o.Str("lockdown: ").Str(Registry::LockedDown() ? "done" : "not yet").Chr('\n');
  o.Str("start-up heap: ").Dec(t.allocs).Str(" allocations, ").Dec(t.bytes).Str(" bytes, ");
  o.Dec(t.sites).Str(" sites\n");
  // A process that never reached its trigger (nginx's master under lockdown:serve) locked
  // nothing: its tagged heap is what a lockdown would lock.
  o.Str(Registry::LockedDown() ? "tagged, locked at lockdown: "
                               : "tagged, not locked (no lockdown yet): ");
  o.Dec(t.tagged_allocs).Str(" allocations, ");
  o.Dec(t.tagged_bytes).Str(" bytes (").Pct(t.tagged_bytes, t.bytes).Str(" of the bytes)\n");
  o.Str("written after lockdown: ").Dec(t.written_sites).Str(" sites, ");
  o.Dec(written_blocks.load(std::memory_order_relaxed)).Str(" blocks, ");
  o.Dec(t.written_bytes).Str(" bytes of pool blocks; ");
  o.Dec(total_writes.load(std::memory_order_relaxed));
  o.Str(" writes (").Dec(unattributed_writes.load(std::memory_order_relaxed));
  o.Str(" outside site-tagged blocks)\n");
  const uint64_t blocks = written_blocks.load(std::memory_order_relaxed);
  const uint64_t ro_allocs = t.tagged_allocs > blocks ? t.tagged_allocs - blocks : 0;
  const uint64_t ro_bytes = t.ro_bytes;
  o.Str("stayed read-only: ").Dec(ro_allocs).Str(" allocations, ").Dec(ro_bytes);
  o.Str(" bytes (").Pct(ro_bytes, t.bytes).Str(" of the start-up heap's bytes)\n");
  o.Str("protected with the learned rules: ").Pct(t.kept_bytes, t.bytes).Str(" of the bytes, ");
  o.Pct(t.kept_allocs, t.allocs).Str(" of the allocations (").Dec(t.kept_bytes).Str(" of ");
  o.Dec(t.bytes).Str(" bytes, ").Dec(t.kept_allocs).Str(" of ").Dec(t.allocs);
  o.Str(" allocations: the sites never written)\n");
  if (written_set_full.load(std::memory_order_relaxed) != 0) {
    o.Str("note: the written-block set was full; written bytes are undercounted\n");
  }

  SiteId local[64];
  SiteId* ids = state.ids != nullptr ? state.ids : local;
  const size_t cap_ids = state.ids != nullptr ? kMaxIds : sizeof(local) / sizeof(local[0]);
  const size_t n = WrittenSitesByWrites(ids, cap_ids);
  if (n != 0) o.Str("sites written after lockdown, most writes first:\n");
  for (size_t i = 0; i < n; ++i) {
    const SiteStats* s = StatsOf(ids[i]);
    const Site* site = SiteById(ids[i]);
    if (s == nullptr || site == nullptr) continue;
    o.Dec(s->writes.load(std::memory_order_relaxed), 9).Str(" writes  ");
    o.Dec(s->written_bytes.load(std::memory_order_relaxed)).Str(" bytes of blocks written; ");
    o.Dec(s->allocs.load(std::memory_order_relaxed)).Str(" allocations, ");
    o.Dec(s->bytes.load(std::memory_order_relaxed)).Str(" bytes  ");
    AppendSite(o, *site);
    o.Str("  # ");
    AppendSymbols(o, *site);
    o.Chr('\n');
    const uintptr_t pc = s->first_write_pc.load(std::memory_order_relaxed);
    o.Str("          first write by ");
    char sym[256];
    if (pc != 0 && absl::Symbolize(reinterpret_cast<const void*>(pc), sym, sizeof(sym))) {
      o.Str(sym);
    } else {
      o.Str("?");
    }
    Site where = {};
    where.pc[0] = pc;
    where.depth = 1;
    o.Str(" [");
    AppendSite(o, where);
    o.Str("] (");
    const char* via = s->first_write_via.load(std::memory_order_relaxed);
    o.Str(via != nullptr ? via : "?").Str("), thread ");
    o.Dec(static_cast<uint64_t>(s->first_write_tid.load(std::memory_order_relaxed))).Chr('\n');
  }
  if (n == cap_ids) o.Str("(more written sites not listed)\n");
  if (o.cut()) {
    // Room was kept for nothing: say so on the last line.
    const char kCut[] = "\n(report cut: buffer full)\n";
    const size_t keep = cap > sizeof(kCut) ? cap - sizeof(kCut) : 0;
    Out tail(buf + (o.size() < keep ? o.size() : keep), sizeof(kCut) + 1);
    tail.Str(kCut);
    return (o.size() < keep ? o.size() : keep) + tail.Finish();
  }
  o.Chr('\n');
  return o.Finish();
}

size_t FormatLearnedRules(char* buf, size_t cap) {
  Out o(buf, cap);
  SiteId local[64];
  SiteId* ids = state.ids != nullptr ? state.ids : local;
  const size_t cap_ids = state.ids != nullptr ? kMaxIds : sizeof(local) / sizeof(local[0]);
  const size_t n = WrittenSitesByWrites(ids, cap_ids);
  if (n == 0) return o.Finish();
  ModuleNames* names = &module_names;
  names->n = 0;
  for (size_t i = 0; i < n; ++i) {
    const Site* site = SiteById(ids[i]);
    if (site == nullptr) continue;
    char text[512];
    FormatSite(*site, text, sizeof(text));
    AddModulesOf(text, names);
  }
  ModuleLines ml = {names, &o};
  ForEachModule(EmitModule, &ml);
  for (size_t i = 0; i < n; ++i) {
    const Site* site = SiteById(ids[i]);
    const SiteStats* s = StatsOf(ids[i]);
    if (site == nullptr || s == nullptr) continue;
    o.Str("exclude ");
    AppendSite(o, *site);
    o.Str("  # ");
    AppendSymbols(o, *site);
    o.Str("; ").Dec(s->writes.load(std::memory_order_relaxed)).Str(" writes\n");
  }
  if (o.cut()) return 0;  // never a half line in a rules file
  return o.Finish();
}

Text MergeRules(const char* old, size_t old_len, const char* add, size_t add_len, char* buf,
                size_t cap, MergeCounts* counts) {
  *counts = {};
  Out o(buf, cap);
  if (old_len == 0) {
    o.Str("# pmalloc rules (docs/rules.md), written by learn mode: each process adds the sites\n");
    o.Str(
        "# it saw written after lockdown (module lines name the binaries the offsets belong "
        "to).\n");
  }
  o.Mem(old, old_len);
  if (old_len != 0 && old[old_len - 1] != '\n') o.Chr('\n');
  const char* p = add;
  const char* end = add + add_len;
  Line l, key;
  while (NextLine(&p, end, &l)) {
    const char kind = KeyOf(l, &key);
    if (kind == 0) continue;
    // Compare against the text built so far: the old file and the lines added already.
    if (HasKey(o.data(), o.size(), kind, key)) {
      if (kind == 'e') ++counts->kept_excludes;
      continue;
    }
    o.Mem(l.p, l.n).Chr('\n');
    if (kind == 'e') ++counts->added_excludes;
    if (kind == 'm') ++counts->added_modules;
  }
  if (o.cut()) {
    counts->too_big = true;
    return {nullptr, 0};
  }
  if (counts->added_excludes == 0 && counts->added_modules == 0) return {nullptr, 0};
  return {buf, o.Finish()};
}

void InitLearnReport(LearnMode mode, const char* report_path, const char* rules_path) {
  if (state.on || GetConfig().disable) return;
  const bool has_rules = rules_path != nullptr && rules_path[0] != '\0';
  if (mode == LearnMode::kOff && !has_rules) return;
  state.learn = mode != LearnMode::kOff;
  state.permissive = mode == LearnMode::kPermissive;
  CopyPath(state.rules_path, rules_path);
  CopyPath(state.report_path, report_path);
  if (state.report_path[0] == '\0' && state.rules_path[0] != '\0') {
    const size_t n = strlen(state.rules_path);
    if (n + sizeof(".report") <= kPathCap) {
      memcpy(state.report_path, state.rules_path, n);
      memcpy(state.report_path + n, ".report", sizeof(".report"));
    }
  }
  const ssize_t exe = readlink("/proc/self/exe", state.exe, kPathCap - 1);
  state.exe[exe > 0 ? exe : 0] = '\0';
  if (state.report_path[0] != '\0') {
    state.report_fd = OpenAppendFile(state.report_path);
    if (state.report_fd < 0) {
      state.report_open_err = -state.report_fd;
      state.report_fd = -2;
    }
  }
  if (state.learn && !state.permissive && state.rules_path[0] != '\0') {
    state.rules_fd = OpenRewriteFile(state.rules_path);
    if (state.rules_fd < 0) {
      state.rules_open_err = -state.rules_fd;
      state.rules_fd = -1;
    }
  }
  state.report_buf = static_cast<char*>(platform::AllocatePages(kReportCap));
  state.rules_old = static_cast<char*>(platform::AllocatePages(kRulesCap));
  state.rules_new = static_cast<char*>(platform::AllocatePages(kRulesCap));
  state.rules_add = static_cast<char*>(platform::AllocatePages(kAddCap));
  state.ids = static_cast<SiteId*>(platform::AllocatePages(kMaxIds * sizeof(SiteId)));
  state.written = static_cast<std::atomic<uintptr_t>*>(
      platform::AllocatePages(kWrittenSlots * sizeof(std::atomic<uintptr_t>)));
  InitModules();  // sites are named from the module table; the report must not build it
  state.on = true;
  if (state.learn) SetWriteObserver(ObserveLearnedWrite);
  InstallReportSignal(SIGUSR1, OnReportSignal);
}

void WriteLearnReport(const char* why) {
  if (!state.on) return;
  if (writing.exchange(true, std::memory_order_acquire)) return;
  WriteRules();  // first, so that the report says what it did
  WriteSection(why);
  writing.store(false, std::memory_order_release);
}

void FinishLearnReport() {
  if (!state.on) return;
  WriteLearnReport("exit");
  if (state.report_open_err != 0) Say("open the report", state.report_path, state.report_open_err);
  if (const int e = report_write_err.load()) Say("write the report", state.report_path, e);
  if (state.rules_open_err != 0) Say("open the rules file", state.rules_path, state.rules_open_err);
  if (const int e = rules_write_err.load()) Say("rewrite the rules file", state.rules_path, e);
}

}  // namespace pmalloc::internal
