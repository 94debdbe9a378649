#include "core/config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "core/log.h"
#include "core/window.h"

namespace pmalloc::internal {
namespace {

ABSL_CONST_INIT Config config;
// 0: not parsed, 1: being parsed, 2: ready.
ABSL_CONST_INIT std::atomic<int> state{0};

// A [begin, end) slice of the configuration string: no copies, no allocation.
struct Slice {
  const char* begin;
  const char* end;
  size_t size() const { return static_cast<size_t>(end - begin); }
  bool Is(const char* s) const { return strlen(s) == size() && memcmp(begin, s, size()) == 0; }
};

void Report(const char* what, Slice key, Slice value) {
  LogLine line;
  line.Str("pmalloc: PMALLOC_CONF: ").Str(what).Str(" '");
  for (const char* p = key.begin; p < key.end; ++p) {
    const char c[2] = {*p, '\0'};
    line.Str(c);
  }
  if (value.begin != nullptr) {
    line.Str("' value '");
    for (const char* p = value.begin; p < value.end; ++p) {
      const char c[2] = {*p, '\0'};
      line.Str(c);
    }
  }
  line.Str("' ignored");
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

void ParseEntry(Slice key, Slice value, Config* c) {
  bool ok = false;
  if (key.Is("disable")) {
    ok = ParseBool(value, &c->disable);
  } else if (key.Is("seal")) {
    ok = ParseBool(value, &c->seal);
  } else if (key.Is("stats_print")) {
    ok = ParseBool(value, &c->stats_print);
  } else if (key.Is("window")) {
    ok = ParseSize(value, &c->window) && c->window >= (size_t{1} << 30);
  } else if (key.Is("protect")) {
    if (value.Is("shared") || value.Is("mprotect")) {
      c->protect_shared = value.Is("shared");
      ok = true;
    }
  } else if (key.Is("lockdown")) {
    if (value.Is("main")) {
      c->lockdown_main = ok = true;
    } else if (value.size() > 7 && memcmp(value.begin, "signal:", 7) == 0) {
      ok = ParseSignal({value.begin + 7, value.end}, &c->lockdown_signal);
    }
  } else {
    Report("unknown key", key, {nullptr, nullptr});
    return;
  }
  if (!ok) Report("bad value for key", key, value);
}

}  // namespace

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
  if (ABSL_PREDICT_TRUE(state.load(std::memory_order_acquire) == 2)) return config;
  int expected = 0;
  if (state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    ParseConfig(getenv("PMALLOC_CONF"), &config);
    if (config.window != 0 && !Window::SetSize(config.window)) {
      LogLine line;
      line.Str("pmalloc: PMALLOC_CONF: window already reserved, key 'window' ignored");
      line.Emit();
    }
    state.store(2, std::memory_order_release);
  } else {
    while (state.load(std::memory_order_acquire) != 2) {
    }
  }
  return config;
}

}  // namespace pmalloc::internal
