// Lockdown triggers and the exit report configured by PMALLOC_CONF (config.h): a signal
// (lockdown:signal:<SIG>), program entry (lockdown:main, called by the libc face's
// __libc_start_main hook), the first serving call (lockdown:call:NAME and lockdown:serve,
// called by the face's interposers in preload/serving_calls.cc), a delay
// (lockdown:after:DURATION) and stats_print:true (the table itself: core/stats_report.h).
// Installed by a library constructor. User guide: docs/triggers.md.
#ifndef PMALLOC_CORE_TRIGGERS_H_
#define PMALLOC_CORE_TRIGGERS_H_

#include <atomic>

#include "core/config.h"

namespace pmalloc::internal {

// True while a serving-call trigger (lockdown:call:, lockdown:serve) may still fire or the
// lockdown it started is still running. The interposers' one branch: a relaxed load.
extern std::atomic<bool> serving_trigger_armed __attribute__((visibility("hidden")));
inline bool ServingTriggerArmed() { return serving_trigger_armed.load(std::memory_order_relaxed); }

// The slow path of an interposed serving call `call`, made before it reaches the real
// function. Fires the lockdown if this call qualifies (the first caller runs it; callers
// that arrive while it runs wait until it is complete, so no serving call starts with the
// pools half protected). Keeps errno. REQUIRES: ServingTriggerArmed() was true.
void OnServingCall(ServingCall call);

// Locks every pool with the configured flags (seal:true adds PMALLOC_LOCKDOWN_SEAL) and
// reports a failure on stderr. No-op under disable:true.
void ConfiguredLockdown(const char* why);

// Called once when main() is entered (lockdown:main).
void OnMainEntry();

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_TRIGGERS_H_
