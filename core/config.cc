#include "core/config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "absl/base/attributes.h"
#include "absl/base/call_once.h"
#include "core/log.h"
#include "core/ro_state.h"
#include "core/window.h"

namespace pmalloc::internal {
namespace {

// Read-only after lockdown (core/ro_state.h).
ABSL_CONST_INIT PMALLOC_RO_STATE RoSlot<Config> config;
ABSL_CONST_INIT absl::once_flag config_once;

// A [begin, end) slice of the configuration string: no copies, no allocation.
struct Slice {
  const char* begin;
  const char* end;
  size_t size() const { return static_cast<size_t>(end - begin); }
  bool Is(const char* s) const { return strlen(s) == size() && memcmp(begin, s, size()) == 0; }
  bool StartsWith(const char* s) const {
    return strlen(s) <= size() && memcmp(begin, s, strlen(s)) == 0;
  }
};

// Longest part of a key or value quoted in a message: the line (512 bytes) keeps its ending.
constexpr size_t kMaxQuoted = 160;

void Quote(LogLine& line, Slice s) {
  const size_t n = s.size() < kMaxQuoted ? s.size() : kMaxQuoted;
  for (size_t i = 0; i < n; ++i) {
    const char c[2] = {s.begin[i], '\0'};
    line.Str(c);
  }
  if (n < s.size()) line.Str("...");
}

// "pmalloc: PMALLOC_CONF: <what> '<key>'[ value '<value>'][ (<why>)] ignored"
void Report(const char* what, Slice key, Slice value, const char* why = nullptr) {
  LogLine line;
  line.Str("pmalloc: PMALLOC_CONF: ").Str(what).Str(" '");
  Quote(line, key);
  if (value.begin != nullptr) {
    line.Str("' value '");
    Quote(line, value);
  }
  line.Str("'");
  if (why != nullptr) line.Str(" (").Str(why).Str(")");
  line.Str(" ignored");
  line.Emit();
}

bool ParseBool(Slice v, bool* out) {
  if (v.Is("true") || v.Is("1")) {
    *out = true;
  } else if (v.Is("false") || v.Is("0")) {
    *out = false;
  } else {
    return false;
  }
  return true;
}

// "16G", "512m", "1073741824".
bool ParseSize(Slice v, size_t* out) {
  size_t n = 0;
  const char* p = v.begin;
  if (p == v.end) return false;
  for (; p < v.end && *p >= '0' && *p <= '9'; ++p) {
    if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, *p - '0', &n)) {
      return false;
    }
  }
  if (p == v.begin) return false;
  int shift = 0;
  if (p < v.end) {
    switch (*p | 0x20) {
      case 'k':
        shift = 10;
        break;
      case 'm':
        shift = 20;
        break;
      case 'g':
        shift = 30;
        break;
      case 't':
        shift = 40;
        break;
      default:
        return false;
    }
    ++p;
  }
  if (p != v.end || (shift != 0 && n > (~size_t{0} >> shift))) return false;
  *out = n << shift;
  return true;
}

bool ParseWindow(Slice v, size_t* out) {
  size_t n;
  if (!ParseSize(v, &n) || n < kMinWindowSize) return false;
  *out = n;
  return true;
}

bool ParseProtect(Slice v, bool* shared) {
  if (!v.Is("shared") && !v.Is("mprotect")) return false;
  *shared = v.Is("shared");
  return true;
}

// "USR2", "SIGUSR2", "12".
bool ParseSignal(Slice v, int* out) {
  if (v.size() > 3 && memcmp(v.begin, "SIG", 3) == 0) v.begin += 3;
  static constexpr struct {
    const char* name;
    int sig;
  } kSignals[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP},
                  {"INT", SIGINT},   {"TERM", SIGTERM}, {"CONT", SIGCONT}};
  for (const auto& s : kSignals) {
    if (v.Is(s.name)) {
      *out = s.sig;
      return true;
    }
  }
  int n = 0;
  for (const char* p = v.begin; p < v.end; ++p) {
    if (*p < '0' || *p > '9' || n > 1000) return false;
    n = n * 10 + (*p - '0');
  }
  if (v.size() == 0 || n <= 0 || n >= NSIG || n == SIGKILL || n == SIGSTOP) return false;
  *out = n;
  return true;
}

// "listen+accept+epoll_wait" into a ServingCall mask (config.h).
bool ParseCalls(Slice v, uint32_t* out) {
  uint32_t mask = 0;
  const char* p = v.begin;
  while (p <= v.end) {
    const char* plus = static_cast<const char*>(memchr(p, '+', v.end - p));
    const Slice name{p, plus == nullptr ? v.end : plus};
    bool known = false;
    for (uint32_t i = 0; i < kServingCallCount; ++i) {
      if (name.Is(kServingCallNames[i])) {
        mask |= 1u << i;
        known = true;
      }
    }
    if (!known) return false;
    if (plus == nullptr) break;
    p = plus + 1;
  }
  *out |= mask;
  return true;
}

// "500ms", "2s", "100us", "250000ns": a positive number and a unit.
bool ParseDuration(Slice v, uint64_t* out) {
  uint64_t n = 0;
  const char* p = v.begin;
  for (; p < v.end && *p >= '0' && *p <= '9'; ++p) {
    if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, *p - '0', &n)) {
      return false;
    }
  }
  if (p == v.begin || n == 0) return false;
  const Slice unit{p, v.end};
  uint64_t scale = 0;
  if (unit.Is("ns")) {
    scale = 1;
  } else if (unit.Is("us")) {
    scale = 1000;
  } else if (unit.Is("ms")) {
    scale = 1000 * 1000;
  } else if (unit.Is("s")) {
    scale = 1000 * 1000 * 1000;
  } else {
    return false;
  }
  return !__builtin_mul_overflow(n, scale, out);
}

// Adds one trigger to *out: "main", "signal:SIG", "call:NAME[+NAME...]", "serve",
// "after:DURATION", "api".
bool ParseLockdown(Slice v, LockdownTrigger* out) {
  if (v.Is("main")) {
    out->main = true;
    return true;
  }
  if (v.Is("serve")) {
    out->serve = true;
    return true;
  }
  if (v.Is("api")) {
    out->api = true;
    return true;
  }
  if (v.StartsWith("signal:")) return ParseSignal({v.begin + 7, v.end}, &out->signal);
  if (v.StartsWith("call:")) return ParseCalls({v.begin + 5, v.end}, &out->calls);
  if (v.StartsWith("after:")) return ParseDuration({v.begin + 6, v.end}, &out->after_ns);
  return false;
}

bool ParseLearn(Slice v, LearnMode* out) {
  bool on = false;
  if (v.Is("permissive")) {
    *out = LearnMode::kPermissive;
  } else if (ParseBool(v, &on)) {
    *out = on ? LearnMode::kOn : LearnMode::kOff;
  } else {
    return false;
  }
  return true;
}

bool ParseTag(Slice v, TagMode* out) {
  if (v.Is("startup")) {
    *out = TagMode::kStartup;
  } else if (v.Is("off")) {
    *out = TagMode::kOff;
  } else {
    return false;
  }
  return true;
}

// A non-empty path that fits ConfPath.
bool ParsePath(Slice v, ConfPath* out) {
  if (v.size() == 0 || v.size() >= ConfPath::kMax) return false;
  memcpy(out->path, v.begin, v.size());
  out->path[v.size()] = '\0';
  return true;
}

// "a+b+c": symbol-name characters and '+'. Appends to earlier wrappers: entries.
bool ParseNames(Slice v, ConfNames* out) {
  if (v.size() == 0) return false;
  for (const char* p = v.begin; p < v.end; ++p) {
    const char c = *p;
    if (!(c == '_' || c == '+' || c == '.' || c == '$' || (c >= '0' && c <= '9') ||
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      return false;
    }
  }
  const size_t have = strlen(out->names);
  const size_t need = have + (have != 0 ? 1 : 0) + v.size();
  if (need >= ConfNames::kMax) return false;
  char* dst = out->names + have;
  if (have != 0) *dst++ = '+';
  memcpy(dst, v.begin, v.size());
  dst[v.size()] = '\0';
  return true;
}

// The minimum a value must meet, for the message (only where a parser has one).
const char* Requirement(Slice key) {
  if (key.Is("window")) return "want a size of at least 1G";
  if (key.Is("rules") || key.Is("report")) return "want a path shorter than 512 bytes";
  return nullptr;
}

void ParseEntry(Slice key, Slice value, Config* c) {
#define PMALLOC_CONF_KEY(name, field, type, initial, parser, values, dflt, doc) \
  if (key.Is(#name)) {                                                          \
    if (!parser(value, &c->field)) {                                            \
      Report("bad value for key", key, value, Requirement(key));                \
    }                                                                           \
    return;                                                                     \
  }
#include "core/config_keys.def"
#undef PMALLOC_CONF_KEY
  Report("unknown key", key, {nullptr, nullptr});
}

}  // namespace

void ApplyLearnMode(Config* c) {
  if (c->learn == LearnMode::kOff) return;
  // A sealed page can never be made writable again to let a recorded write complete.
  if (c->seal) {
    LogLine line;
    line.Str("pmalloc: PMALLOC_CONF: learn mode never seals: key 'seal' ignored");
    line.Emit();
    c->seal = false;
  }
  // Under protect:shared a locked page is a MAP_SHARED memfd page that a forked child
  // shares with its parent: a write let through in the child would change the parent too.
  c->protect_shared = false;
}

void ParseConfig(const char* text, Config* out) {
  if (text == nullptr) return;
  const char* p = text;
  while (*p != '\0') {
    const char* entry_end = strchr(p, ',');
    if (entry_end == nullptr) entry_end = p + strlen(p);
    if (entry_end != p) {
      const char* colon = static_cast<const char*>(memchr(p, ':', entry_end - p));
      if (colon == nullptr) {
        Report("missing ':' value for key", {p, entry_end}, {nullptr, nullptr});
      } else {
        ParseEntry({p, colon}, {colon + 1, entry_end}, out);
      }
    }
    p = *entry_end == ',' ? entry_end + 1 : entry_end;
  }
}

const Config& GetConfig() {
  absl::call_once(config_once, [] {
    {
      RoWrite w;            // the first GetConfig runs long before any lockdown, but be exact
      if (!w.ok()) return;  // sealed before the first parse: the defaults stay
      ParseConfig(getenv("PMALLOC_CONF"), w(&config));
      ApplyLearnMode(w(&config));
    }
    if (config.v.window != 0 && !Window::SetSize(config.v.window)) {
      LogLine line;
      line.Str("pmalloc: PMALLOC_CONF: window already reserved, key 'window' ignored");
      line.Emit();
    }
  });
  return config.v;
}

}  // namespace pmalloc::internal
