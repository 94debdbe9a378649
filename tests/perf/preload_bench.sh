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
build=${1:-build/default}
runs=${2:-7}
shim=$(readlink -f "$build/libpmalloc.so")
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
bin=$build/tests/perf/preload
[ -x "$bin/bench_small_objects" ] || { echo "build the benchmarks first ($bin)" >&2; exit 1; }

# name and arguments: each run takes about a second on jemalloc.
programs=("small_objects 10" "producer_consumer 2 2" "realloc_growth 15")

run_ms() {  # "wall_ms cpu_ms" of one run with LD_PRELOAD=$1
  local pre=$1; shift
  local TIMEFORMAT='%3R %3U %3S' t
  t=$( { time LD_PRELOAD=$pre "$@" > /dev/null 2>&1; } 2>&1 )
  awk '{printf "%d %d\n", $1 * 1000, ($2 + $3) * 1000}' <<< "$t"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "| program | glibc ms | jemalloc ms | shim ms | shim/jemalloc | shim/glibc |" \
  "shim/jemalloc CPU |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for entry in "${programs[@]}"; do
  read -r name args <<< "$entry"
  gw=() jw=() sw=() jc=() sc=()
  for ((i = 0; i < runs; ++i)); do
    # shellcheck disable=SC2086  # args split on purpose
    read -r w _ <<< "$(run_ms "" "$bin/bench_$name" $args)"; gw+=("$w")
    # shellcheck disable=SC2086
    read -r w c <<< "$(run_ms "$jemalloc" "$bin/bench_$name" $args)"; jw+=("$w"); jc+=("$c")
    # shellcheck disable=SC2086
    read -r w c <<< "$(run_ms "$shim" "$bin/bench_$name" $args)"; sw+=("$w"); sc+=("$c")
  done
  awk -v n="$name" -v g="$(median "${gw[@]}")" -v j="$(median "${jw[@]}")" \
    -v s="$(median "${sw[@]}")" -v jc="$(median "${jc[@]}")" -v sc="$(median "${sc[@]}")" \
    'BEGIN {printf "| %s | %d | %d | %d | %.3f | %.3f | %.3f |\n", n, g, j, s, s / j, s / g,
            sc / jc}'
done
echo
echo "median of $runs interleaved runs each; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"

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
