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
source tests/perf/bench_lib.sh
bench_init "${1:-build/default}"
runs=${2:-5}
tag=$(readlink -f "$bin/libtag_all.so")

programs=("small_objects 5" "producer_consumer 2 2" "realloc_growth 10" "working_set 8"
  "mixed 10")

run() {  # "wall_ms maxrss_kib" of one run with LD_PRELOAD=$1
  local pre=$1 out; shift
  out=$(LD_PRELOAD=$pre /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1)
  awk '{printf "%d %d\n", $1 * 1000, $2}' <<< "$out"
}

row() {  # NAME ARGS, then wall ms and peak KiB under jemalloc and tagged
  awk -v n="$1 $2" -v jw="$3" -v jr="$4" -v tw="$5" -v tr="$6" \
    'BEGIN {printf "| %s | %d | %d | %.2f | %d | %d | %.2f |\n", n, jw, tw, tw / jw, jr, tr,
            tr / jr}'
}

echo "| program | jemalloc ms | tagged ms | time ratio | jemalloc peak KiB |" \
  "tagged peak KiB | RSS ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
bench_rows "$runs" run row "$jemalloc" "$shim $tag"
bench_footer "$runs"
