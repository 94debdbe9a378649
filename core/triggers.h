// Lockdown triggers and the exit report configured by PMALLOC_CONF (config.h): a signal
// (lockdown:signal:<SIG>), program entry (lockdown:main, called by the libc face's
// __libc_start_main hook) and stats_print:true (the table itself: core/stats_report.h).
// Installed by a library constructor.
#ifndef PMALLOC_CORE_TRIGGERS_H_
#define PMALLOC_CORE_TRIGGERS_H_

namespace pmalloc::internal {

// Locks every pool with the configured flags (seal:true adds PMALLOC_LOCKDOWN_SEAL) and
// reports a failure on stderr. No-op under disable:true.
void ConfiguredLockdown(const char* why);

// Called once when main() is entered (lockdown:main).
void OnMainEntry();

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_TRIGGERS_H_
