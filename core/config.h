// PMALLOC_CONF: process-wide configuration, `key:value,key:value` in the spirit of
// MALLOC_CONF. The keys, their values and their docs are the rows of core/config_keys.def.
// Parsed once, on first use, without allocating (it can run inside the first malloc or a
// pool creation made by a constructor). A bad key or value is reported with one line on
// stderr naming it, and ignored (the field keeps its earlier value); it is never fatal.
// A key given twice: the last valid value wins (lockdown: accumulates triggers).
#ifndef PMALLOC_CORE_CONFIG_H_
#define PMALLOC_CORE_CONFIG_H_

#include <cstddef>

namespace pmalloc::internal {

// lockdown: the triggers that call pmalloc_lockdown() (core/triggers.h).
struct LockdownTrigger {
  bool main = false;  // lockdown:main
  int signal = 0;     // lockdown:signal:SIG, 0: none
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

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_CONFIG_H_
