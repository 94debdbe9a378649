#!/usr/bin/env bash
# Whole-program wall time of allocation-heavy programs (tests/perf/preload/) on plain glibc,
# under LD_PRELOAD=libjemalloc.so.2 and under LD_PRELOAD=libpmalloc.so (the shim). Runs are
# interleaved (glibc, jemalloc, shim, glibc, ...) so that machine noise hits all three
# alike; prints the median wall time of each and the ratios as a markdown table, plus the
# median CPU time (user + sys), which other load on a shared machine disturbs less.
# With --instructions (needs valgrind), also counts instructions with callgrind, one smaller
# run per program and allocator: deterministic, so it resolves differences that wall time
# on a loaded machine cannot.
# Usage: tests/perf/preload_bench.sh [build dir (build/default)] [runs (7)] [--instructions]
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/perf/bench_lib.sh
bench_init "${1:-build/default}"
runs=${2:-7}

# name and arguments: each run takes about a second on jemalloc.
programs=("small_objects 10" "producer_consumer 2 2" "realloc_growth 15")

run_ms() {  # "wall_ms cpu_ms" of one run with LD_PRELOAD=$1
  local pre=$1; shift
  local TIMEFORMAT='%3R %3U %3S' t
  t=$( { time LD_PRELOAD=$pre "$@" > /dev/null 2>&1; } 2>&1 )
  awk '{printf "%d %d\n", $1 * 1000, ($2 + $3) * 1000}' <<< "$t"
}

row() {  # NAME ARGS, then wall and CPU ms under glibc, jemalloc and the shim
  awk -v n="$1" -v g="$3" -v j="$5" -v jc="$6" -v s="$7" -v sc="$8" \
    'BEGIN {printf "| %s | %d | %d | %d | %.3f | %.3f | %.3f |\n", n, g, j, s, s / j, s / g,
            sc / jc}'
}

echo "| program | glibc ms | jemalloc ms | shim ms | shim/jemalloc | shim/glibc |" \
  "shim/jemalloc CPU |"
echo "|---|---:|---:|---:|---:|---:|---:|"
bench_rows "$runs" run_ms row "" "$jemalloc" "$shim"
bench_footer "$runs"

[ "${3:-}" = --instructions ] || exit 0
small=("small_objects 1" "producer_consumer 1 1" "realloc_growth 2" "small_objects 0")
instructions() {  # total instructions executed (callgrind Ir) with LD_PRELOAD=$1
  local pre=$1; shift
  LD_PRELOAD=$pre valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
    awk '/refs:/ {gsub(",", "", $NF); print $NF}'
}
echo
echo "| program (callgrind) | jemalloc instructions | shim instructions | shim/jemalloc |"
echo "|---|---:|---:|---:|"
for entry in "${small[@]}"; do
  read -r name args <<< "$entry"
  # shellcheck disable=SC2086
  j=$(instructions "$jemalloc" "$bin/bench_$name" $args)
  # shellcheck disable=SC2086
  s=$(instructions "$shim" "$bin/bench_$name" $args)
  awk -v n="$name $args" -v j="$j" -v s="$s" \
    'BEGIN {printf "| %s | %d | %d | %.3f |\n", n, j, s, s / j}'
done
echo
echo "(\"small_objects 0\" does no work: it is the start-up cost of loading the library.)"
