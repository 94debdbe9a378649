#!/usr/bin/env bash
# Checks libpmalloc.so's dynamic symbol table against core/exports.map and the public
# headers:
#  1. every defined dynamic symbol matches a pattern of the map's global section (nothing
#     leaks: nothing of pmalloc::internal, no C++ symbol of pmalloc — pmalloc.hpp is
#     header-only);
#  2. every exact (non-glob) name there is exported (the libc face is complete);
#  3. every function of the public C API (pmalloc.h, compat/*.h) is exported;
#  4. the library does not need absl::Status's shared libraries, which a preloaded process
#     would otherwise have to load.
# Usage: exports_test.sh LIBPMALLOC EXPORTS_MAP [--no-face]
#   --no-face: sanitizer builds leave the libc face out (preload/CMakeLists.txt), so check 2
#   is skipped there.
set -euo pipefail
lib=$1
map=$2
face=1
[ "${3:-}" = "--no-face" ] && face=0
fail=0
exported=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | sort -u)

# Patterns of the global section: strip comments, take `name;` entries up to `local:`.
patterns=$(perl -0pe 's{/\*.*?\*/}{}gs' "$map" | tr -s ' \n' '\n' |
  awk '/^local:/ {exit} /;$/ {sub(/;$/, ""); if ($0 != "" && $0 !~ /[{}"]/) print}')
for sym in $exported; do                                           # 1
  ok=0
  for pat in $patterns; do
    # shellcheck disable=SC2053  # glob match on purpose
    if [[ $sym == $pat ]]; then ok=1; break; fi
  done
  if [ $ok = 0 ]; then echo "leaked: $sym"; fail=1; fi
done
if nm -D --defined-only -C "$lib" | grep -E " [TWDBRV] pmalloc::"; then
  echo "C++ symbols of pmalloc are exported (above)"
  fail=1
fi
if [ $face = 1 ]; then                                             # 2
  for pat in $patterns; do
    case $pat in *'*'*|*'?'*) continue ;; esac
    if ! grep -qx -- "$pat" <<<"$exported"; then echo "missing (map): $pat"; fail=1; fi
  done
fi
for want in pmalloc_create_pool pmalloc_prealloc pmalloc pzalloc pmalloc_array pcalloc \
    pstrdup pfree pmalloc_protect_pool pmalloc_seal_pool pmalloc_destroy_pool \
    pmalloc_lockdown pmalloc_pool_of pmalloc_is_protected pmalloc_pool_stats \
    pmalloc_default_pool pmalloc_aligned pmalloc_usable_size pmalloc_pool_name \
    pmalloc_register_lockdown_range pmalloc_scope_enter pmalloc_scope_exit \
    pmalloc_scope_current pmalloc_kmalloc pmalloc_krealloc pmalloc_kfree \
    pmalloc_kfree_sensitive pmalloc_ksize pmalloc_kstrdup pmalloc_kstrndup pmalloc_kmemdup \
    pmalloc_gfp_zone pmalloc_gfp_zone_release pmalloc_gfp_pool pmalloc_gfp_valid \
    pmalloc_ro_after_init_register; do                             # 3
  if ! grep -qx -- "$want" <<<"$exported"; then echo "missing (API): $want"; fail=1; fi
done
if readelf -d "$lib" | grep -E 'NEEDED.*libabsl_(status|cord|strings|synchronization)'; then
  echo "libpmalloc.so needs absl libraries it should not (above)"  # 4
  fail=1
fi
echo "$(wc -w <<<"$exported") exported symbols, $(wc -w <<<"$patterns") patterns"
[ $fail -eq 0 ] && echo "exports: OK"
exit $fail
