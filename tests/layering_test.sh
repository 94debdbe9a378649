#!/bin/bash
# Fails when a file includes a layer above its own (core/README.md has the rules):
#  - inside core/, a file may include core/ headers of its own rank or lower (table below);
#  - core/ includes nothing of compat/ or preload/, compat/ nothing of preload/;
#  - nothing outside preload/ includes preload/;
#  - tests/, tools/ and examples/ include only public headers (no core/, compat/, preload/
#    private headers).
# Unit tests beside the code (core/*_test.cc) may include any core/ header.
# Usage: layering_test.sh <source dir>. Prints each offending file:line.
set -u
cd "${1:?usage: layering_test.sh <source dir>}" || exit 2

# Rank of each core/ module (file name without .h/.cc/.def). Keep in step with core/README.md.
declare -A rank=(
  [platform]=0
  [ro_state]=1 [pool_lock]=1
  [meta_allocator]=1 [log]=1 [fatal]=1 [write_observer]=1 [modules]=1 [report_file]=1
  [window]=2 [sites]=2 [free_ranges]=2
  [config]=3 [config_keys]=3 [rules]=3
  [pool]=4 [pool_pointer]=4 [block_map]=4 [disabled_blocks]=4 [write_rare]=4 [object_check]=4
  [registry]=5 [fault_report]=5 [learn]=5
  [triggers]=6 [stats_report]=6 [learn_report]=6
  [c_api]=7 [scope]=7
)

status=0
fail() {
  echo "$1: $2"
  status=1
}

# Every core/ source must have a rank, so a new file cannot slip past the check.
for f in core/*.h core/*.cc core/*.def; do
  m=$(basename "$f")
  m=${m%.*}
  [[ $m == *_test ]] && continue
  [[ -v rank[$m] ]] || fail "$f" "not in the rank table of tests/layering_test.sh (and core/README.md)"
done

# file:line:layer/name.h for every quoted or angled include of a project directory.
includes() {
  grep -rnoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<](core|compat|preload)/[^">]+' \
    "$@" 2>/dev/null | sed -E 's/:[[:space:]]*#[[:space:]]*include[[:space:]]*["<]/:/'
}

while IFS=: read -r file line target; do
  where="$file:$line"
  layer=${file%%/*}
  tlayer=${target%%/*}
  case "$layer" in
    core)
      if [[ $tlayer != core ]]; then
        fail "$where" "core/ includes $target (core/ knows nothing of compat/ or preload/)"
        continue
      fi
      m=$(basename "$file")
      m=${m%.*}
      [[ $m == *_test ]] && continue
      t=$(basename "$target")
      t=${t%.*}
      if [[ ! -v rank[$m] || ! -v rank[$t] ]]; then
        fail "$where" "includes $target: unranked module (add it to the rank table)"
      elif ((rank[$t] > rank[$m])); then
        fail "$where" "$m (rank ${rank[$m]}) includes $target (rank ${rank[$t]}): a layer above it"
      fi
      ;;
    compat)
      [[ $tlayer == preload ]] && fail "$where" "compat/ includes $target (nothing includes preload/)"
      ;;
    preload) ;;
    *)
      fail "$where" "$layer/ includes the private header $target (public headers only)"
      ;;
  esac
done < <(includes core compat preload tests tools examples)

if ((status == 0)); then
  echo "layering: every include goes to the same layer or one below it"
fi
exit $status
