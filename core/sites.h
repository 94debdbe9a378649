// Allocation sites for tagging rules (docs/rules.md): a site is the first kSiteFrames return
// addresses of an allocation outside libpmalloc and outside wrapper functions (ngx_palloc,
// zmalloc, ...; core/modules.h), written `module+0xOFFSET` so that it is stable across ASLR.
// Sites are interned into an mmap'd table that never moves (no malloc, lock-free lookup), each
// with atomic counters, and a side table remembers which site allocated each rule-tagged
// block, so that the fault handler and learn mode's write observer can name it.
// Cost: CaptureSite runs the unwinder (docs/rules.md has the numbers); it is called only from
// the tagging path (tag:startup), never for untagged allocations.
#ifndef PMALLOC_CORE_SITES_H_
#define PMALLOC_CORE_SITES_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pmalloc::internal {

// Frames kept per site: one is not enough (zmalloc's caller alone covers thousands of redis
// allocations), three told the servers' written and read-only allocations apart.
inline constexpr int kSiteFrames = 3;

// Raw return addresses, innermost first, after skipping pmalloc's own frames and wrapper
// functions' frames. depth 0 = unknown.
struct Site {
  uintptr_t pc[kSiteFrames];
  int depth;
};

using SiteId = uint32_t;  // 0 = no site

// Per-site counters, in a table that never moves (mmap'd), reachable by id; all atomics,
// async-signal-safe to update and read.
// allocs/bytes count every allocation made at the site while tagging was active, whether
// it was tagged or excluded (`tagged` says which).
struct SiteStats {
  std::atomic<uint64_t> allocs;              // allocations made at this site while tagging
  std::atomic<uint64_t> bytes;               // and their requested bytes
  std::atomic<uint64_t> writes;              // learned writes to its blocks after lockdown
  std::atomic<uint64_t> written_bytes;       // bytes of the blocks that were written (each once)
  std::atomic<uintptr_t> first_write_pc;     // first faulting pc (store) or syscall caller
  std::atomic<const char*> first_write_via;  // "store" or a syscall name (static string)
  std::atomic<int> first_write_tid;
  std::atomic<uint8_t> tagged;  // 1 tagged (went to a pool), 0 excluded
};

// Captures the current allocation's site (called from the tagging path only, never on the
// untagged path). Not async-signal-safe (unwinder), never calls malloc. False (depth 0) when
// no frame outside pmalloc and the wrappers was found.
bool CaptureSite(Site* out);

// Decides, once per new site, whether its allocations are tagged (SiteStats::tagged); set
// by the rules (core/rules.h) before tagging starts. Without one every site is tagged.
// Called under the interning lock, never from a signal handler.
using SiteClassifier = bool (*)(const Site& site);
void SetSiteClassifier(SiteClassifier fn);

// Interns a site: same frames -> same id. Lock-free lookup, no malloc (mmap'd arena).
// Returns 0 when the table is full or `site.depth` is 0.
SiteId InternSite(const Site& site);
const Site* SiteById(SiteId id);  // nullptr for 0/unknown
SiteStats* StatsOf(SiteId id);    // nullptr for 0/unknown
uint32_t SiteCount();             // ids are 1..SiteCount()

// Which site allocated a block (rule-tagged blocks only). Record at allocation, forget at
// free. BlockSite is async-signal-safe (fault handler, write observer); 0 when unknown.
// `block` is the block's start (the pointer malloc returned).
void RecordBlockSite(const void* block, SiteId id);
void ForgetBlockSite(const void* block);
SiteId BlockSite(const void* block);

// Text form, async-signal-safe, no malloc: "nginx+0x4a1b2 nginx+0x3c0d0 libc.so.6+0x2f110"
// (module = file name of the real path of the object, offset from its load base; frames
// separated by one space, innermost first; a frame in no known module is "?+0xPC"). Returns bytes
// written (NUL-terminated, truncated to n). FormatSymbols writes "ngx_palloc < ngx_array_create <
// main" (symbols when known,
// "?" otherwise), the `# comment` of a rules line.
size_t FormatSite(const Site& site, char* buf, size_t n);
size_t FormatSymbols(const Site& site, char* buf, size_t n);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_SITES_H_
