#include "core/rules.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/base/attributes.h"
#include "core/log.h"
#include "core/meta_allocator.h"
#include "core/modules.h"

namespace pmalloc::internal {
namespace {

// Longest part of a value quoted in a message.
constexpr size_t kMaxQuoted = 120;
// Largest rules file read (a learned file has one line per written site: a few hundred).
constexpr size_t kMaxFileBytes = size_t{16} << 20;

struct Token {
  const char* p;
  size_t n;
  bool Is(const char* s) const { return strlen(s) == n && memcmp(p, s, n) == 0; }
};

bool Space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Splits [p, end) into whitespace-separated tokens; returns how many (at most max, the
// rest counted but not stored).
int Split(const char* p, const char* end, Token* out, int max) {
  int n = 0;
  while (p < end) {
    while (p < end && Space(*p)) ++p;
    if (p == end) break;
    const char* b = p;
    while (p < end && !Space(*p)) ++p;
    if (n < max) out[n] = {b, static_cast<size_t>(p - b)};
    ++n;
  }
  return n;
}

void Quote(LogLine& line, const char* p, size_t n) {
  const size_t k = n < kMaxQuoted ? n : kMaxQuoted;
  for (size_t i = 0; i < k; ++i) {
    const char c[2] = {p[i], '\0'};
    line.Str(c);
  }
  if (k < n) line.Str("...");
}

// "pmalloc: rules FILE:LINE: <what> '<value>', <consequence>"
void BadLine(const char* file, uint32_t lineno, const char* what, const char* p, size_t n,
             const char* consequence) {
  LogLine line;
  line.Str("pmalloc: rules ").Str(file).Str(":").Dec(lineno).Str(": ").Str(what).Str(" '");
  Quote(line, p, n);
  line.Str("', ").Str(consequence);
  line.Emit();
}

// "nginx+0x4a1b2": module name before the last '+', hex offset after "0x".
bool ParseFrame(Token t, Token* module, uintptr_t* offset) {
  const char* plus = nullptr;
  for (size_t i = 0; i < t.n; ++i) {
    if (t.p[i] == '+') plus = t.p + i;
  }
  if (plus == nullptr || plus == t.p) return false;
  const char* h = plus + 1;
  const char* end = t.p + t.n;
  if (end - h < 3 || h[0] != '0' || (h[1] != 'x' && h[1] != 'X')) return false;
  uintptr_t v = 0;
  for (const char* q = h + 2; q < end; ++q) {
    const char c = *q;
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    if ((v >> 60) != 0) return false;  // overflow
    v = (v << 4) | static_cast<uintptr_t>(d);
  }
  *module = {t.p, static_cast<size_t>(plus - t.p)};
  *offset = v;
  return true;
}

bool HexToken(Token t) {
  if (t.n == 0) return false;
  for (size_t i = 0; i < t.n; ++i) {
    const char c = t.p[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

ABSL_CONST_INIT RuleSet* global_rules = nullptr;

}  // namespace

RuleSet::~RuleSet() {
  MetaFree(rules_);
  MetaFree(strings_);
}

uint32_t RuleSet::AddString(const char* s, size_t n) {
  if (strings_len_ == 0) {  // offset 0 is the empty string
    strings_cap_ = 4096;
    strings_ = static_cast<char*>(MetaAlloc(strings_cap_, true));
    if (strings_ == nullptr) return 0;
    strings_len_ = 1;
  }
  if (n == 0) return 0;
  if (strings_len_ + n + 1 > strings_cap_) {
    size_t cap = strings_cap_ * 2;
    while (strings_len_ + n + 1 > cap) cap *= 2;
    char* bigger = static_cast<char*>(MetaAlloc(cap));
    if (bigger == nullptr) return 0;
    memcpy(bigger, strings_, strings_len_);
    MetaFree(strings_);
    strings_ = bigger;
    strings_cap_ = cap;
  }
  const auto off = static_cast<uint32_t>(strings_len_);
  memcpy(strings_ + off, s, n);
  strings_[off + n] = '\0';
  strings_len_ += n + 1;
  return off;
}

bool RuleSet::Add(const Rule& r) {
  if (count_ == capacity_) {
    const int cap = capacity_ == 0 ? 64 : capacity_ * 2;
    auto* bigger = static_cast<Rule*>(MetaAlloc(sizeof(Rule) * static_cast<size_t>(cap)));
    if (bigger == nullptr) return false;
    if (count_ != 0) memcpy(bigger, rules_, sizeof(Rule) * static_cast<size_t>(count_));
    MetaFree(rules_);
    rules_ = bigger;
    capacity_ = cap;
  }
  rules_[count_++] = r;
  if (r.kind == kWrapper) ++wrapper_count_;
  if (r.kind == kTagModule) has_tag_module_ = true;
  return true;
}

const char* RuleSet::wrapper(int i) const {
  for (int k = 0; k < count_; ++k) {
    if (rules_[k].kind == kWrapper && i-- == 0) return Str(rules_[k].module[0]);
  }
  return "";
}

int RuleSet::Parse(const char* text, size_t len, const char* file) {
  int bad = 0;
  uint32_t lineno = 0;
  const char* end = text + len;
  for (const char* p = text; p < end;) {
    const char* eol = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(end - p)));
    if (eol == nullptr) eol = end;
    ++lineno;
    const char* hash = static_cast<const char*>(memchr(p, '#', static_cast<size_t>(eol - p)));
    Token tok[6];  // the longest line: module NAME build-id HEX path PATH
    const int n = Split(p, hash != nullptr ? hash : eol, tok, 6);
    const char* line_begin = p;
    p = eol + 1;
    if (n == 0) continue;
    const Token d = tok[0];
    const size_t line_len = static_cast<size_t>((hash != nullptr ? hash : eol) - line_begin);
    Rule r = {};
    r.line = lineno;
    if (d.Is("exclude") || d.Is("include")) {
      r.kind = d.Is("exclude") ? kExclude : kInclude;
      if (n < 2 || n > 1 + kSiteFrames) {
        BadLine(file, lineno, n < 2 ? "missing site in" : "more than 3 frames in", line_begin,
                line_len, "rule ignored");
        ++bad;
        continue;
      }
      bool ok = true;
      for (int i = 1; i < n && ok; ++i) {
        Token module;
        uintptr_t offset;
        if (!ParseFrame(tok[i], &module, &offset)) {
          BadLine(file, lineno, "malformed site frame (want module+0xOFFSET)", tok[i].p, tok[i].n,
                  "rule ignored");
          ok = false;
          break;
        }
        r.module[i - 1] = AddString(module.p, module.n);
        r.offset[i - 1] = offset;
      }
      if (!ok) {
        ++bad;
        continue;
      }
      r.frames = static_cast<uint8_t>(n - 1);
    } else if (d.Is("exclude-module") || d.Is("tag-module") || d.Is("wrapper")) {
      r.kind = d.Is("exclude-module") ? kExcludeModule : d.Is("tag-module") ? kTagModule : kWrapper;
      if (n != 2) {
        BadLine(file, lineno, n < 2 ? "missing name in" : "more than one name in", line_begin,
                line_len, "rule ignored");
        ++bad;
        continue;
      }
      r.module[0] = AddString(tok[1].p, tok[1].n);
    } else if (d.Is("module") || d.Is("build-id")) {
      // "module NAME build-id HEX path PATH"; the older "build-id NAME HEX" too.
      Token name, id, path = {"", 0};
      bool ok;
      if (d.Is("module")) {
        ok = n == 6 && tok[2].Is("build-id") && tok[4].Is("path") && HexToken(tok[3]);
        name = tok[1];
        id = tok[3];
        path = tok[5];
      } else {
        ok = n == 3 && HexToken(tok[2]);
        name = tok[1];
        id = tok[2];
      }
      if (!ok) {
        BadLine(file, lineno, "malformed module line (want 'module NAME build-id HEX path PATH')",
                line_begin, line_len, "line ignored");
        ++bad;
        continue;
      }
      r.kind = kHeader;
      r.module[0] = AddString(name.p, name.n);
      r.module[1] = AddString(id.p, id.n);
      r.module[2] = AddString(path.p, path.n);
    } else {
      BadLine(file, lineno, "unknown directive", d.p, d.n, "line ignored");
      ++bad;
      continue;
    }
    if (!Add(r)) {
      BadLine(file, lineno, "out of memory for", line_begin, line_len, "rule ignored");
      ++bad;
    }
  }
  return bad;
}

bool RuleSet::Tagged(const FrameRef* frames, int n, const char* untagged_module) const {
  int best = 0;
  bool best_include = false;
  bool module_exclude = false;
  bool module_tag = false;
  for (int k = 0; k < count_; ++k) {
    const Rule& r = rules_[k];
    switch (r.kind) {
      case kExclude:
      case kInclude: {
        if (r.frames > n || r.frames < best) break;
        bool match = true;
        for (int i = 0; i < r.frames && match; ++i) {
          match =
              frames[i].offset == r.offset[i] && strcmp(frames[i].module, Str(r.module[i])) == 0;
        }
        if (!match) break;
        if (r.frames > best) {
          best = r.frames;
          best_include = r.kind == kInclude;
        } else if (r.kind == kExclude) {
          best_include = false;  // a tie: exclude wins
        }
        break;
      }
      case kExcludeModule:
      case kTagModule:
        if (n > 0 && strcmp(frames[0].module, Str(r.module[0])) == 0) {
          (r.kind == kExcludeModule ? module_exclude : module_tag) = true;
        }
        break;
      default:
        break;
    }
  }
  if (best > 0) return best_include;
  if (module_exclude) return false;
  if (module_tag) return true;
  if (n > 0 && untagged_module[0] != '\0' && strcmp(frames[0].module, untagged_module) == 0) {
    return false;
  }
  return !has_tag_module_;
}

int RuleSet::CheckBuildIds(const char* file) const {
  int mismatches = 0;
  for (int k = 0; k < count_; ++k) {
    const Rule& r = rules_[k];
    if (r.kind != kHeader) continue;
    bool seen = false;  // one line per module
    for (int j = 0; j < k && !seen; ++j) {
      seen = rules_[j].kind == kHeader && strcmp(Str(rules_[j].module[0]), Str(r.module[0])) == 0;
    }
    ModuleInfo m;
    if (seen || !ModuleNamed(Str(r.module[0]), &m)) continue;
    if (strcmp(m.build_id, Str(r.module[1])) == 0) continue;
    ++mismatches;
    LogLine line;
    line.Str("pmalloc: rules ").Str(file).Str(":").Dec(r.line).Str(": module '");
    line.Str(Str(r.module[0])).Str("' was learned with build-id ").Str(Str(r.module[1]));
    line.Str(" but ").Str(m.path).Str(" has ").Str(m.build_id[0] != '\0' ? m.build_id : "none");
    line.Str(": its sites may not match any more, re-learn");
    line.Emit();
  }
  return mismatches;
}

void LoadRules(const char* path, bool missing_ok) {
  InitModules();
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<size_t>(st.st_size) > kMaxFileBytes) {
    const int err = fd < 0 ? errno : S_ISREG(st.st_mode) ? EFBIG : EINVAL;
    if (fd >= 0) close(fd);
    if (missing_ok && err == ENOENT) return;
    LogLine line;
    line.Str("pmalloc: rules ").Str(path).Str(": cannot read it (errno ").Dec(err);
    line.Str(err == EFBIG ? ", larger than 16 MiB" : err == EINVAL ? ", not a regular file" : "");
    line.Str("): no rules, every start-up allocation is tagged");
    line.Emit();
    return;
  }
  const auto size = static_cast<size_t>(st.st_size);
  char* text = static_cast<char*>(MetaAlloc(size + 1));
  size_t got = 0;
  while (text != nullptr && got < size) {
    const ssize_t r = read(fd, text + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  close(fd);
  if (text == nullptr) return;
  RuleSet* rules = MetaNew<RuleSet>();
  if (rules != nullptr) {
    rules->Parse(text, got, path);
    for (int i = 0; i < rules->wrapper_count(); ++i) {
      const char* w = rules->wrapper(i);
      if (!AddWrapper(w, strlen(w))) {
        BadLine(path, 0, "too many wrappers, not added:", w, strlen(w), "ignored");
      }
    }
    rules->CheckBuildIds(path);
    global_rules = rules;
  }
  MetaFree(text);
  SetSiteClassifier(RulesTagSite);
}

bool RulesTagSite(const Site& site) {
  const RuleSet* rules = global_rules;
  FrameRef frames[kSiteFrames];
  for (int i = 0; i < site.depth && i < kSiteFrames; ++i) {
    ModuleInfo m;
    if (FindModule(site.pc[i], &m)) {
      frames[i] = {m.name, site.pc[i] - m.base};
    } else {
      frames[i] = {"?", site.pc[i]};  // as FormatSite writes it
    }
  }
  if (rules == nullptr) {  // no rules file: only the loader's own allocations stay untagged
    return !(site.depth > 0 && LoaderName()[0] != '\0' &&
             strcmp(frames[0].module, LoaderName()) == 0);
  }
  return rules->Tagged(frames, site.depth, LoaderName());
}

}  // namespace pmalloc::internal
