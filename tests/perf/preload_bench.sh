#!/usr/bin/env bash
# Whole-program wall time of allocation-heavy programs (tests/perf/preload/) on plain glibc,
# under LD_PRELOAD=libjemalloc.so.2 and under LD_PRELOAD=libpmalloc.so (the shim). Runs are
# interleaved (glibc, jemalloc, shim, glibc, ...) so that machine noise hits all three
# alike; prints the median of each and the ratios as a markdown table.
# Usage: tests/perf/preload_bench.sh [build dir (build/default)] [runs (7)]
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

wall_ms() {  # wall time of one run, in ms, with LD_PRELOAD=$1
  local pre=$1; shift
  local start end
  start=$(date +%s%N)
  LD_PRELOAD=$pre "$@" > /dev/null
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "| program | glibc ms | jemalloc ms | shim ms | shim/jemalloc | shim/glibc |"
echo "|---|---:|---:|---:|---:|---:|"
for entry in "${programs[@]}"; do
  read -r name args <<< "$entry"
  g=() j=() s=()
  # shellcheck disable=SC2086  # args split on purpose
  for ((i = 0; i < runs; ++i)); do
    g+=("$(wall_ms "" "$bin/bench_$name" $args)")
    j+=("$(wall_ms "$jemalloc" "$bin/bench_$name" $args)")
    s+=("$(wall_ms "$shim" "$bin/bench_$name" $args)")
  done
  mg=$(median "${g[@]}") mj=$(median "${j[@]}") ms=$(median "${s[@]}")
  awk -v n="$name" -v g="$mg" -v j="$mj" -v s="$ms" \
    'BEGIN {printf "| %s | %d | %d | %d | %.3f | %.3f |\n", n, g, j, s, s / j, s / g}'
done
echo
echo "median of $runs interleaved runs each; $(nproc) CPUs; $(uname -r)"
