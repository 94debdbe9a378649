// Tagging rules (PMALLOC_CONF=rules:/path, docs/rules.md): which allocation sites the
// start-up tagging (tag:startup) sends to the default lockable pool. One rule a line, `#`
// starts a comment:
//   exclude SITE            allocations at SITE stay untagged (jemalloc)
//   include SITE            allocations at SITE are tagged (overrides a module rule)
//   exclude-module NAME     sites whose first frame is in module NAME stay untagged
//   tag-module NAME         sites whose first frame is in NAME are tagged; once any
//                           tag-module line is given, sites in other modules are not
//   wrapper SYMBOL          one more wrapper function whose frames sites skip
//   module NAME build-id HEX path PATH   the module a learn run saw (checked at load)
// Allocations made by the dynamic loader itself are not tagged by default (see Tagged).
// SITE is 1 to kSiteFrames frames `module+0xOFFSET`, innermost first, separated by spaces;
// a rule of k frames matches every site whose first k frames equal it. The most specific
// (longest) matching site rule wins; between an exclude and an include of the same length,
// exclude wins. Then module rules (exclude-module before tag-module), then the default.
//
// A bad line (unknown directive, malformed site, missing operand) prints one line on
// stderr naming file:line and the value, and is ignored. Not for the malloc path: rules
// are parsed at start-up (from metadata memory); Tagged() only reads them.
#ifndef PMALLOC_CORE_RULES_H_
#define PMALLOC_CORE_RULES_H_

#include <cstddef>
#include <cstdint>

#include "core/sites.h"

namespace pmalloc::internal {

// One frame of a site in the form rules name it.
struct FrameRef {
  const char* module;  // file name of the module's real path; "?" when unknown
  uintptr_t offset;    // from the module's load base
};

class RuleSet {
 public:
  RuleSet() = default;
  ~RuleSet();
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

  // Adds the rules in `text` (`len` bytes); bad lines are reported as `file`:LINE. Returns
  // the number of bad lines.
  int Parse(const char* text, size_t len, const char* file);

  // Whether a site with these frames (innermost first) is tagged. A site whose first frame
  // is in module `untagged_module` (the dynamic loader: its link maps are written by later
  // dlopen, dlsym and TLS set-up) is not tagged unless a site rule or a module rule of the
  // file says otherwise.
  bool Tagged(const FrameRef* frames, int n, const char* untagged_module = "") const;

  int size() const { return count_; }
  // The wrapper lines, for the caller to add (core/modules.h AddWrapper).
  int wrapper_count() const { return wrapper_count_; }
  const char* wrapper(int i) const;

  // Reports, one stderr line per module, every `module` header whose module is loaded with
  // another build-id ("re-learn"). Returns the number of mismatches.
  int CheckBuildIds(const char* file) const;

 private:
  enum Kind : uint8_t { kExclude, kInclude, kExcludeModule, kTagModule, kWrapper, kHeader };
  struct Rule {
    Kind kind;
    uint8_t frames;
    uint32_t line;
    uint32_t module[kSiteFrames];  // offsets into strings_ (the header's: name, build-id, path)
    uintptr_t offset[kSiteFrames];
  };

  bool Add(const Rule& r);
  uint32_t AddString(const char* s, size_t n);  // 0 on failure
  const char* Str(uint32_t off) const { return strings_ + off; }

  Rule* rules_ = nullptr;
  int count_ = 0;
  int capacity_ = 0;
  char* strings_ = nullptr;
  size_t strings_len_ = 0;
  size_t strings_cap_ = 0;
  int wrapper_count_ = 0;
  bool has_tag_module_ = false;
};

// The process's rules: reads `path` into the global rule set, adds its wrapper lines, checks
// its build-ids and installs the site classifier (core/sites.h). An unreadable file prints
// one line (unless `missing_ok` and it does not exist: a learn run's first round) and
// leaves no rules: every site is tagged. Call once, at start-up, before tagging begins.
void LoadRules(const char* path, bool missing_ok);

// The decision for `site` under the global rules (when none were loaded, every site but
// the dynamic loader's is tagged). Resolves modules with FindModule; not async-signal-safe.
bool RulesTagSite(const Site& site);

}  // namespace pmalloc::internal

#endif  // PMALLOC_CORE_RULES_H_
