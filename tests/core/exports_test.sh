#!/usr/bin/env bash
# Checks libpmalloc.so's dynamic symbol table against core/exports.map's intent: every
# public C API function is exported, nothing of pmalloc::internal is, no C++ symbol of
# pmalloc (pmalloc.hpp is header-only) and the library does not need absl::Status's shared
# libraries, which a preloaded process would otherwise have to load.
# Usage: exports_test.sh LIBPMALLOC
set -euo pipefail
syms=$(nm -D --defined-only -C "$1")
missing=0
for want in pmalloc_create_pool pmalloc_prealloc pmalloc pzalloc pmalloc_array pcalloc \
    pstrdup pfree pmalloc_protect_pool pmalloc_seal_pool pmalloc_destroy_pool pmalloc_lockdown \
    pmalloc_pool_of pmalloc_is_protected pmalloc_pool_stats pmalloc_default_pool \
    pmalloc_aligned pmalloc_usable_size pmalloc_pool_name pmalloc_register_lockdown_range; do
  found=$(grep -E "^[0-9a-f]+ [TW] $want\$" <<<"$syms" || true)
  if [ -z "$found" ]; then
    echo "not exported: $want" >&2
    missing=1
  fi
done
if grep -E " [TWDBRV] pmalloc::" <<<"$syms" >&2; then
  echo "C++ symbols of pmalloc are exported (above)" >&2
  missing=1
fi
if readelf -d "$1" | grep -E 'NEEDED.*libabsl_(status|cord|strings|synchronization)' >&2; then
  echo "libpmalloc.so needs absl libraries it should not (above)" >&2
  missing=1
fi
[ "$missing" -eq 0 ] && echo "exports: OK"
