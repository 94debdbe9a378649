#include "policy.h"

#include <errno.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace policy_db {
namespace {

constexpr std::string_view kPermNames[] = {"read",    "write",  "exec",   "getattr",
                                           "setattr", "create", "unlink", "append"};

std::string Key(std::string_view subject, std::string_view object) {
  std::string key(subject);
  key += ' ';
  key += object;
  return key;
}

// A small deterministic generator (LCG), so every run writes the same file.
class Lcg {
 public:
  uint32_t Next() {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state_ >> 33);
  }
  uint32_t Below(uint32_t n) { return Next() % n; }

 private:
  uint64_t state_ = 0x5eed;
};

struct Table {
  RuleMap* map;
  size_t rules;
};

absl::StatusOr<Table> BuildTable(const std::string& path, pmalloc_pool* pool);

}  // namespace

uint32_t PermBit(std::string_view name) {
  for (size_t i = 0; i < std::size(kPermNames); ++i) {
    if (kPermNames[i] == name) return 1u << i;
  }
  return 0;
}

absl::StatusOr<Policy> Policy::Load(const std::string& path, pmalloc_pool* pool) {
  absl::StatusOr<Table> table = BuildTable(path, pool);
  if (!table.ok()) return table.status();
  void* mem = pmalloc_aligned(pool, sizeof(PolicyRoot), alignof(PolicyRoot));
  if (mem == nullptr) return absl::ResourceExhaustedError("pool: no memory for the root");
  auto* root = new (mem) PolicyRoot{};
  // Plain stores while the pool is writable (pmalloc::Write is one then).
  if (absl::Status st = root->map.Set(table->map); !st.ok()) return st;
  if (absl::Status st = root->rules.Set(table->rules); !st.ok()) return st;
  if (absl::Status st = root->generation.Set(1); !st.ok()) return st;
  return Policy(root, pool);
}

absl::Status Policy::Reload(const std::string& path, bool seal) {
  // After lockdown the pool's areas are read-only: the first allocation opens a fresh area
  // (the pool is growable), which holds the whole new table.
  absl::StatusOr<Table> table = BuildTable(path, pool_);
  if (!table.ok()) return table.status();
  // Locked before anyone can reach it: readers only ever see read-only tables.
  if ((seal ? pmalloc_seal_pool(pool_) : pmalloc_protect_pool(pool_)) != 0 && errno != ENOSYS) {
    return absl::ErrnoToStatus(errno, "locking the new table");
  }
  // The swap: one atomic store of the root pointer, through pmalloc (no writable mapping at
  // the root's address, ever). rules and generation follow; a reader may pair the new table
  // with the old count for a moment, which only the demo's report reads.
  if (absl::Status st = root_->map.Set(table->map); !st.ok()) return st;
  if (absl::Status st = root_->rules.Set(table->rules); !st.ok()) return st;
  return root_->generation.Set(root_->generation.get() + 1);
}

namespace {

absl::StatusOr<Table> BuildTable(const std::string& path, pmalloc_pool* pool) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  // Parse everything first, so the table can be sized once: growing it rehashes, and the
  // old buckets would stay behind as free (but mapped) pool memory.
  struct Rule {
    std::string key;
    uint32_t bit;
  };
  std::vector<Rule> parsed;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::istringstream fields(line);
    std::string verb, subject, object, perm, extra;
    if (!(fields >> verb) || verb[0] == '#') continue;
    if (verb != "allow" || !(fields >> subject >> object >> perm) || (fields >> extra)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": expected 'allow <subject> <object> <perm>'"));
    }
    const uint32_t bit = PermBit(perm);
    if (bit == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": unknown permission '", perm, "'"));
    }
    parsed.push_back({Key(subject, object), bit});
  }

  pmalloc::PoolAllocator<std::pair<const std::string_view, uint32_t>> alloc(pool);
  void* mem = pmalloc_aligned(pool, sizeof(RuleMap), alignof(RuleMap));
  if (mem == nullptr) return absl::ResourceExhaustedError("pool: no memory for the table");
  // The table object itself is constructed in the pool, so its bucket pointer and size are
  // locked along with the buckets and the strings.
  RuleMap* map = new (mem) RuleMap(0, RuleMap::hasher(), RuleMap::key_equal(), alloc);
  try {
    map->reserve(parsed.size());
    for (const Rule& rule : parsed) {
      auto it = map->find(rule.key);
      if (it == map->end()) {
        // The key string is copied into the pool; the map keeps a view of that copy.
        const char* stored = pstrdup(pool, rule.key.c_str());
        if (stored == nullptr) return absl::ResourceExhaustedError("pool: no memory for a key");
        it = map->emplace(std::string_view(stored, rule.key.size()), 0).first;
      }
      it->second |= rule.bit;
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("pool: no memory for the table");
  }
  return Table{map, parsed.size()};
}

}  // namespace

bool Policy::Allows(std::string_view subject, std::string_view object, uint32_t perm) const {
  const RuleMap* map = root_->map.get();  // one acquire load: this table, whole
  const auto it = map->find(Key(subject, object));
  return it != map->end() && (it->second & perm) == perm && perm != 0;
}

uint32_t* Policy::SlotOf(std::string_view subject, std::string_view object) const {
  RuleMap* map = const_cast<RuleMap*>(root_->map.get());
  const auto it = map->find(Key(subject, object));
  return it == map->end() ? nullptr : &it->second;
}

absl::Status GeneratePolicy(const std::string& path, size_t rules) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  out << "# policy_db demo policy: " << rules << " rules, generated deterministically.\n"
      << "# Format: allow <subject> <object> <perm>; anything not allowed is denied.\n\n";
  // A few well-known rules first, so the demo's queries have a known answer: alice may
  // stat /etc/shadow but not read it; bob may write /srv/www.
  const char* const kFixed[] = {
      "allow alice /etc/shadow getattr", "allow alice /home/alice read",
      "allow alice /home/alice write",   "allow bob /srv/www write",
      "allow bob /srv/www read",         "allow root /etc/shadow read",
      "allow root /etc/shadow write",    "allow www-data /srv/www read",
  };
  size_t written = 0;
  for (const char* rule : kFixed) {
    if (written == rules) break;
    out << rule << "\n";
    ++written;
  }
  if (written < rules) out << "\n# Generated service and user rules.\n";
  const char* const kServices[] = {"www-data", "postgres", "backup", "cron", "sshd", "nobody"};
  const char* const kDirs[] = {"/srv/data", "/var/log", "/var/lib/app", "/home/shared", "/opt"};
  Lcg rng;
  while (written < rules) {
    std::string subject = rng.Below(4) == 0 ? kServices[rng.Below(std::size(kServices))]
                                            : absl::StrCat("user", rng.Below(rules / 4 + 1));
    const std::string object =
        absl::StrCat(kDirs[rng.Below(std::size(kDirs))], "/f", rng.Below(rules / 2 + 1));
    out << "allow " << subject << " " << object << " "
        << kPermNames[rng.Below(std::size(kPermNames))] << "\n";
    ++written;
    if (written % 1000 == 0 && written < rules) out << "\n# --- " << written << " ---\n";
  }
  out.flush();
  if (!out) return absl::InternalError(absl::StrCat("error writing ", path));
  return absl::OkStatus();
}

}  // namespace policy_db
