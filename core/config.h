// PMALLOC_CONF: process-wide configuration, `key:value,key:value` in the spirit of
// MALLOC_CONF. The keys, their values and their docs are the rows of core/config_keys.def.
// Parsed once, on first use, without allocating (it can run inside the first malloc or a
// pool creation made by a constructor). A bad key or value is reported with one line on
// stderr naming it, and ignored (the field keeps its earlier value); it is never fatal.
// A key given twice: the last valid value wins (lockdown: accumulates triggers).
#ifndef PMALLOC_CORE_CONFIG_H_
#define PMALLOC_CORE_CONFIG_H_

#include <cstddef>
#include <cstdint>

namespace pmalloc::internal {

// The libc calls a lockdown:call: or lockdown:serve trigger watches (bit i of a mask is
// ServingCall i). The interposers are in preload/serving_calls.cc.
enum ServingCall : uint8_t {
  kCallListen,
  kCallAccept,
  kCallAccept4,
  kCallEpollWait,
  kCallEpollPwait,
  kCallEpollPwait2,
  kCallPoll,
  kCallPpoll,
  kCallSelect,
  kCallPselect,
  kCallSigwait,
  kCallSigwaitinfo,
  kCallSigtimedwait,
  kServingCallCount
};
inline constexpr const char* kServingCallNames[kServingCallCount] = {
    "listen", "accept", "accept4", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll",
    "ppoll",  "select", "pselect", "sigwait",    "sigwaitinfo", "sigtimedwait"};
// lockdown:serve: every serving call but listen, on the main thread.
inline constexpr uint32_t kServeMask = ((1u << kServingCallCount) - 1) & ~(1u << kCallListen);

// lockdown: the triggers that call pmalloc_lockdown() (core/triggers.h).
struct LockdownTrigger {
  bool main = false;      // lockdown:main
  int signal = 0;         // lockdown:signal:SIG, 0: none
  uint32_t calls = 0;     // lockdown:call:NAME[+NAME...], a ServingCall mask, any thread
  bool serve = false;     // lockdown:serve, kServeMask on the main thread
  uint64_t after_ns = 0;  // lockdown:after:DURATION from library start-up, 0: none
  bool api = false;       // lockdown:api, only pmalloc_lockdown() (the others are dropped)
};

// learn: lockdown as usual, but writes to locked pools are recorded and allowed
// (core/learn.h). kPermissive is the same mechanism for production use (the rules file is
// not rewritten).
enum class LearnMode : uint8_t { kOff, kOn, kPermissive };

// tag: which allocations of unmodified programs go to the default lockable pool
// (docs/rules.md). kStartup: every allocation from the library constructor until the
// lockdown trigger, except what the rules file excludes.
enum class TagMode : uint8_t { kOff, kStartup };

// A file path given as a key's value (rules:/path): copied, NUL-terminated, no allocation.
// Empty when the key is absent.
struct ConfPath {
  static constexpr size_t kMax = 512;
  char path[kMax] = {};
};

// wrappers:NAME+NAME...: more wrapper functions whose frames a site skips (core/modules.h),
// '+'-separated as given.
struct ConfNames {
  static constexpr size_t kMax = 1024;
  char names[kMax] = {};
};

struct Config {
#define PMALLOC_CONF_KEY(key, field, type, initial, parser, values, dflt, doc) type field = initial;
#include "core/config_keys.def"
#undef PMALLOC_CONF_KEY
};

// The parsed configuration. Thread-safe; the first call parses PMALLOC_CONF (and applies
// window: through Window::SetSize), later calls are one acquire load.
const Config& GetConfig();

// Parses `text` into `out`, reporting bad entries on stderr. Exposed for tests.
void ParseConfig(const char* text, Config* out);

// What learn mode implies, applied after parsing: no sealing (one line if seal:true was
// asked for) and protect:mprotect. No-op when learn is off. Exposed for tests.
void ApplyLearnMode(Config* c);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_CONFIG_H_
