// A tiny access-control policy held entirely in pmalloc pool memory: rule strings and the
// hash table (absl::flat_hash_map with pmalloc::PoolAllocator, itself constructed in the
// pool). Once the pool is locked, neither the rules nor the table can be written. The pool
// is write-rare (docs/write-rare.md): Reload builds a new table in a fresh area of the same
// pool, locks it, and swaps the root pointer with one write-rare store, while readers go on.
// Uses only the public pmalloc headers.
#ifndef PMALLOC_EXAMPLES_POLICY_DB_POLICY_H_
#define PMALLOC_EXAMPLES_POLICY_DB_POLICY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/statusor.h"
#include "pmalloc/pmalloc.hpp"

namespace policy_db {

// Permission bits; a rule grants one permission on an object to a subject.
enum Perm : uint32_t {
  kRead = 1u << 0,
  kWrite = 1u << 1,
  kExec = 1u << 2,
  kGetattr = 1u << 3,
  kSetattr = 1u << 4,
  kCreate = 1u << 5,
  kUnlink = 1u << 6,
  kAppend = 1u << 7,
};

// The bit for a permission name ("read", ...), or 0 when unknown.
uint32_t PermBit(std::string_view name);

// Key: "<subject> <object>" (a string in pool memory); value: granted permission bits.
using RuleMap =
    absl::flat_hash_map<std::string_view, uint32_t, absl::Hash<std::string_view>,
                        std::equal_to<std::string_view>,
                        pmalloc::PoolAllocator<std::pair<const std::string_view, uint32_t>>>;

// The policy's root, in the pool: the only words that change after lockdown, and only
// through pmalloc's write-rare calls.
struct PolicyRoot {
  pmalloc::WriteRare<const RuleMap*> map;
  pmalloc::WriteRare<uint64_t> rules;
  pmalloc::WriteRare<uint64_t> generation;  // 1 for the first load, +1 per reload
};

class Policy {
 public:
  // Reads `path` (lines "allow <subject> <object> <perm>", '#' comments, blank lines) into
  // `pool` (write-rare and growable, for Reload). Errors: NotFound (file), InvalidArgument
  // (bad line, with its number), ResourceExhausted (pool memory).
  static absl::StatusOr<Policy> Load(const std::string& path, pmalloc_pool* pool);

  // Reads `path` into a new table in the same pool, protects the pool (and seals it when
  // `seal`: the new area is sealed too), then swaps the root to the new table with
  // pmalloc_wr_assign_ptr. Concurrent Allows calls see the old or the new table, whole. The
  // old table stays (locked memory cannot be reused before destroy). On error the policy is
  // unchanged. Not thread-safe against another Reload.
  absl::Status Reload(const std::string& path, bool seal);

  // True when `perm` is granted to `subject` on `object`. Default deny. Read-only; safe
  // against a concurrent Reload.
  bool Allows(std::string_view subject, std::string_view object, uint32_t perm) const;

  // The permission word of a (subject, object) pair inside pool memory, or nullptr. This is
  // what an attacker would aim at; the demo's --tamper uses it.
  uint32_t* SlotOf(std::string_view subject, std::string_view object) const;

  size_t rules() const { return root_->rules.get(); }
  size_t entries() const { return root_->map.get()->size(); }
  uint64_t generation() const { return root_->generation.get(); }
  const PolicyRoot* root() const { return root_; }
  const RuleMap* table() const { return root_->map.get(); }

 private:
  Policy(PolicyRoot* root, pmalloc_pool* pool) : root_(root), pool_(pool) {}
  PolicyRoot* root_;  // lives in the pool
  pmalloc_pool* pool_;
};

// Writes a deterministic policy of exactly `rules` allow lines (plus comments and blank
// lines) to `path`. Errors: Internal (cannot write).
absl::Status GeneratePolicy(const std::string& path, size_t rules);

}  // namespace policy_db

#endif  // PMALLOC_EXAMPLES_POLICY_DB_POLICY_H_
