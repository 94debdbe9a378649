// The per-pool statistics table on stderr (malloc_stats(), and at exit with
// PMALLOC_CONF=stats_print:true). Its column headers are the pmalloc_stats field names.
#ifndef PMALLOC_CORE_STATS_REPORT_H_
#define PMALLOC_CORE_STATS_REPORT_H_

namespace pmalloc::internal {

// Writes one header line and one line per pool, each "pmalloc: "-prefixed:
//   pool  live_allocs  live_bytes  mapped_bytes  areas  freed_after_protect_bytes  state
// Allocation-free (core/log.h), but takes the registry lock and each pool's lock: not
// async-signal-safe.
void PrintPoolStats();

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_STATS_REPORT_H_
