#!/usr/bin/env bash
# Checks libpmalloc.so's exported symbols against core/exports.map: every defined dynamic
# symbol must match a pattern of the map's global section (nothing else leaks), and every
# exact (non-glob) name there must really be exported (the face is complete).
# Usage: exported_symbols_test.sh <libpmalloc.so> <exports.map>
set -eu
lib=$1
map=$2
# Patterns of the global section: strip comments, take `name;` entries up to `local:`.
patterns=$(perl -0pe 's{/\*.*?\*/}{}gs' "$map" | tr -s ' \n' '\n' |
  awk '/^local:/ {exit} /;$/ {sub(/;$/, ""); if ($0 != "" && $0 !~ /[{}"]/) print}')
exported=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | sort -u)
fail=0
for sym in $exported; do
  ok=0
  for pat in $patterns; do
    # shellcheck disable=SC2053  # glob match on purpose
    if [[ $sym == $pat ]]; then ok=1; break; fi
  done
  if [ $ok = 0 ]; then echo "leaked: $sym"; fail=1; fi
done
for pat in $patterns; do
  case $pat in *'*'*|*'?'*) continue ;; esac
  if ! grep -qx -- "$pat" <<< "$exported"; then echo "missing: $pat"; fail=1; fi
done
echo "$(wc -w <<< "$exported") exported symbols, $(wc -w <<< "$patterns") patterns"
exit $fail
