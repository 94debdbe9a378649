#!/usr/bin/env bash
# Checks libpmalloc.so's dynamic symbol table against core/exports.map's intent: every
# public C and C++ API function is exported, nothing of pmalloc::internal is.
# (Quoted names in a version script's extern "C++" block are matched literally; that once
# left the whole C++ API unexported.) Usage: exports_test.sh LIBPMALLOC
set -euo pipefail
syms=$(nm -D --defined-only -C "$1")
missing=0
for want in pmalloc_create_pool pmalloc_prealloc pmalloc pzalloc pmalloc_array pcalloc \
    pstrdup pfree pmalloc_protect_pool pmalloc_seal_pool pmalloc_destroy_pool pmalloc_lockdown \
    pmalloc_pool_of pmalloc_is_protected pmalloc_pool_stats pmalloc_default_pool \
    pmalloc_aligned pmalloc_usable_size pmalloc_pool_name pmalloc_register_lockdown_range \
    'pmalloc::Pool::Create(' 'pmalloc::Pool::~Pool()' 'pmalloc::Pool::operator=(' \
    'pmalloc::Pool::Allocate(' 'pmalloc::Pool::Protect()' 'pmalloc::Pool::Seal()' \
    'pmalloc::Pool::Destroy()' 'pmalloc::Pool::stats() const' 'pmalloc::Lockdown('; do
  if [[ $want == *::* ]]; then  # C++: a prefix of the demangled signature
    found=$(grep -F -e " T $want" -e " W $want" <<<"$syms" || true)
  else  # C: the exact name
    found=$(grep -E "^[0-9a-f]+ [TW] $want\$" <<<"$syms" || true)
  fi
  if [ -z "$found" ]; then
    echo "not exported: $want" >&2
    missing=1
  fi
done
if grep -E " [TWDBR] pmalloc::internal::" <<<"$syms" >&2; then
  echo "internal symbols are exported (above)" >&2
  missing=1
fi
[ "$missing" -eq 0 ] && echo "exports: OK"
