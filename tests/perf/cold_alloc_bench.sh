#!/usr/bin/env bash
# Cold tagged allocation (issue 11): bench_cold_allocs (tests/perf/preload/cold_allocs.cc)
# in a fresh process per run, N mallocs of mixed 8-512 B and of 16 B only, under
# LD_PRELOAD=libjemalloc.so.2 and under libpmalloc.so + libtag_all.so (every call a tagged
# allocation from one fresh pool). Runs are interleaved so machine noise hits both alike;
# prints the median ns per allocation of each and the same-run ratio.
# Goal (issue 11): tagged/jemalloc <= 1.2 for both.
# Usage: tests/perf/cold_alloc_bench.sh [build dir (build/default)] [runs (7)] [N (100000)]
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/perf/bench_lib.sh
bench_init "${1:-build/default}"
runs=${2:-7}
n=${3:-100000}
tag=$(readlink -f "$bin/libtag_all.so")

run() {  # "ns_per_alloc 0" of one run with LD_PRELOAD=$1
  local pre=$1; shift
  echo "$(LD_PRELOAD=$pre "$@") 0"
}

echo "| sizes | N | jemalloc ns | tagged pmalloc ns | ratio |"
echo "|---|---:|---:|---:|---:|"
for sizes in mixed 16; do
  read -r -d '' jem tagged < <(bench_interleaved "$runs" run "$bin/bench_cold_allocs $sizes $n" \
    "$jemalloc" "$shim $tag" | awk '{print $1}'; printf '\0') || true
  awk -v s="$sizes" -v n="$n" -v j="$jem" -v t="$tagged" \
    'BEGIN {printf "| %s | %d | %.1f | %.1f | %.2f |\n", s, n, j, t, t / j}'
done
bench_footer "$runs"
