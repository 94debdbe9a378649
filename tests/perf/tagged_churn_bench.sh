#!/usr/bin/env bash
# Fully tagged churn: the programs of tests/perf/preload/ under LD_PRELOAD=libjemalloc.so.2
# and under LD_PRELOAD="libpmalloc.so libtag_all.so", which puts every thread of the program
# in one pool's scope (every malloc/new/realloc of the program is a pool allocation). Runs
# are interleaved (jemalloc, tagged, jemalloc, ...) so machine noise hits both alike; prints
# per program the median wall time and peak RSS (ru_maxrss) of each, and the same-run
# ratios. Goal (issue 9 item 9): tagged/jemalloc <= 2 in time and <= 1.3 in peak RSS.
# Usage: tests/perf/tagged_churn_bench.sh [build dir (build/default)] [runs (5)]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/default}
runs=${2:-5}
shim=$(readlink -f "$build/libpmalloc.so")
bin=$build/tests/perf/preload
tag=$(readlink -f "$bin/libtag_all.so")
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -x "$bin/bench_small_objects" ] || { echo "build the benchmarks first ($bin)" >&2; exit 1; }

programs=("small_objects 5" "producer_consumer 2 2" "realloc_growth 10" "working_set 8"
  "mixed 10")

run() {  # "wall_ms maxrss_kib" of one run with LD_PRELOAD=$1
  local pre=$1 out; shift
  out=$(LD_PRELOAD=$pre /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1)
  awk '{printf "%d %d\n", $1 * 1000, $2}' <<< "$out"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "| program | jemalloc ms | tagged ms | time ratio | jemalloc peak KiB |" \
  "tagged peak KiB | RSS ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for entry in "${programs[@]}"; do
  read -r name args <<< "$entry"
  jw=() jr=() tw=() tr=()
  for ((i = 0; i < runs; ++i)); do
    # shellcheck disable=SC2086  # args split on purpose
    read -r w r <<< "$(run "$jemalloc" "$bin/bench_$name" $args)"; jw+=("$w"); jr+=("$r")
    # shellcheck disable=SC2086
    read -r w r <<< "$(run "$shim $tag" "$bin/bench_$name" $args)"; tw+=("$w"); tr+=("$r")
  done
  awk -v n="$name $args" -v jw="$(median "${jw[@]}")" -v tw="$(median "${tw[@]}")" \
    -v jr="$(median "${jr[@]}")" -v tr="$(median "${tr[@]}")" \
    'BEGIN {printf "| %s | %d | %d | %.2f | %d | %d | %.2f |\n", n, jw, tw, tw / jw, jr, tr,
            tr / jr}'
done
echo
echo "median of $runs interleaved runs each; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
