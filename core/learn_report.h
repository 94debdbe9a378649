// What learn mode records and writes (docs/triggers.md#learn-reports). The write observer
// (core/write_observer.h) attributes every write that learn mode lets through to the block
// it hit (Pool::FindBlock) and that block's allocation site (core/sites.h: BlockSite), and
// counts it in the site's SiteStats: writes, written_bytes (each block once, through a
// lock-free set of written blocks), the first writer's pc, call and thread.
//
// At exit, and on SIGUSR1, two files are written:
//   - the human report (report:PATH, default RULES.report): one section per process,
//     appended with one write(2) under the file's record lock (core/report_file.h), so forked
//     children and several runs add up without interleaving: the start-up heap's
//     allocations and bytes, how much was tagged and locked, how much was written after
//     lockdown and how much stayed read-only, and the written sites sorted by writes;
//   - the rules file (rules:PATH, learn:true only): module lines and one `exclude SITE`
//     line per written site, merged with what the file already holds (a union), so the
//     sites of every process and every run are kept. learn:permissive leaves it unchanged.
// Both files are opened at start-up, while the process still has its starting privileges.
// Everything after that (the observer, the report, the rules rewrite) is async-signal-safe:
// fixed buffers mapped at start-up, system calls, absl::Symbolize.
//
// SIGUSR1: pmalloc's handler writes both files, then hands the signal to the program's own
// SIGUSR1 action (nginx reopens its logs on it; the default action still terminates), which
// the libc face records like a SIGSEGV handler (preload/signals.cc).
#ifndef PMALLOC_CORE_LEARN_REPORT_H_
#define PMALLOC_CORE_LEARN_REPORT_H_

#include <cstddef>
#include <cstdint>

#include "core/config.h"
#include "core/report_file.h"

namespace pmalloc::internal {

// Opens the files, maps the buffers, sets the write observer and the SIGUSR1 handler when
// learn mode is on or a rules file is configured (enforcing runs get a report section too,
// without writes). Called by a library constructor with the configured mode and paths
// (nullptr or "" for none; the report defaults to RULES.report); the first call counts.
void InitLearnReport(LearnMode mode, const char* report_path, const char* rules_path);

// Writes the report section and, under learn:true, merges the written sites into the rules
// file. `why`: "exit", "SIGUSR1". Async-signal-safe. A concurrent or nested call (SIGUSR1
// during the exit report) returns at once.
void WriteLearnReport(const char* why);

// At exit: the report, then one stderr line per file that could not be opened or written.
void FinishLearnReport();

// The write observer. Async-signal-safe.
void ObserveLearnedWrite(const void* addr, uintptr_t pc, const char* via);

// Exposed for tests.
// Builds the report section into out (capacity cap); returns its length.
size_t FormatLearnReport(const char* why, char* out, size_t cap);
// The rules lines for the written sites ("module ..." lines, then "exclude SITE  # ..."),
// into out; returns the length.
size_t FormatLearnedRules(char* out, size_t cap);
// The union of `old` and `add` (both rules files' text): `old` unchanged, followed by the
// lines of `add` not already in it (a module line by its name, an exclude line by its site),
// into out. {nullptr, 0} when nothing is new (or out is too small: *counts says which).
struct MergeCounts {
  int added_excludes = 0;
  int kept_excludes = 0;  // excludes of `add` already in `old`
  int added_modules = 0;
  bool too_big = false;
};
Text MergeRules(const char* old, size_t old_len, const char* add, size_t add_len, char* out,
                size_t cap, MergeCounts* counts);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_LEARN_REPORT_H_
