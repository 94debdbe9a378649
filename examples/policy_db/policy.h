// A tiny access-control policy held entirely in pmalloc pool memory: rule strings and the
// hash table (absl::flat_hash_map with pmalloc::PoolAllocator, itself constructed in the
// pool). Once the pool is locked, neither the rules nor the table can be written.
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

class Policy {
 public:
  // Reads `path` (lines "allow <subject> <object> <perm>", '#' comments, blank lines) into
  // `pool`. Errors: NotFound (file), InvalidArgument (bad line, with its number),
  // ResourceExhausted (pool memory).
  static absl::StatusOr<Policy> Load(const std::string& path, pmalloc_pool* pool);

  // True when `perm` is granted to `subject` on `object`. Default deny. Read-only.
  bool Allows(std::string_view subject, std::string_view object, uint32_t perm) const;

  // The permission word of a (subject, object) pair inside pool memory, or nullptr. This is
  // what an attacker would aim at; the demo's --tamper uses it.
  uint32_t* SlotOf(std::string_view subject, std::string_view object) const;

  size_t rules() const { return rules_; }
  size_t entries() const { return map_->size(); }

 private:
  Policy(RuleMap* map, size_t rules) : map_(map), rules_(rules) {}
  RuleMap* map_;  // lives in the pool
  size_t rules_;
};

// Writes a deterministic policy of exactly `rules` allow lines (plus comments and blank
// lines) to `path`. Errors: Internal (cannot write).
absl::Status GeneratePolicy(const std::string& path, size_t rules);

}  // namespace policy_db

#endif  // PMALLOC_EXAMPLES_POLICY_DB_POLICY_H_
