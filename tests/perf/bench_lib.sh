# shellcheck shell=bash
# Shared by the whole-program benchmarks (preload_bench.sh, tagged_churn_bench.sh), sourced
# from the repository root. `bench_init BUILD_DIR` sets build, shim (libpmalloc.so),
# jemalloc (libjemalloc.so.2) and bin (the programs of tests/perf/preload/), or stops when
# they are not built; `median N...` prints the median; `bench_interleaved` runs a program
# under several LD_PRELOAD values, `bench_rows` every program of the script's `programs`;
# `bench_footer RUNS` says how the numbers were taken.

# shellcheck disable=SC2034  # the variables are the sourcing script's
bench_init() {
  build=$1
  shim=$(readlink -f "$build/libpmalloc.so")
  jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
  bin=$build/tests/perf/preload
  [ -x "$bin/bench_small_objects" ] || { echo "build the benchmarks first ($bin)" >&2; exit 1; }
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# bench_interleaved RUNS MEASURE "PROGRAM ARGS" PRELOAD...: runs the program RUNS times
# under each LD_PRELOAD value in turn (interleaved, so machine noise hits all alike);
# `MEASURE PRELOAD PROGRAM ARGS` prints two numbers of one run. Prints one line per PRELOAD,
# in order: the medians of the two numbers.
bench_interleaved() {
  local runs=$1 measure=$2 cmd=$3 i k a b
  shift 3
  local -a first=() second=()
  for ((i = 0; i < runs; ++i)); do
    k=0
    for pre in "$@"; do
      # shellcheck disable=SC2086  # the program's arguments split on purpose
      read -r a b <<< "$("$measure" "$pre" $cmd)"
      first[k]+="$a " second[k]+="$b "
      k=$((k + 1))
    done
  done
  for ((k = 0; k < $#; ++k)); do
    # shellcheck disable=SC2086  # one number per word
    echo "$(median ${first[k]}) $(median ${second[k]})"
  done
}

# bench_rows RUNS MEASURE ROW PRELOAD...: for each entry "NAME ARGS" of the sourcing
# script's array `programs`, bench_interleaved of $bin/bench_NAME ARGS, then
# `ROW "NAME" "ARGS" MEDIANS...` (two per PRELOAD, in order) prints its table row.
bench_rows() {
  local runs=$1 measure=$2 row=$3 entry name args
  shift 3
  # shellcheck disable=SC2154  # programs is the sourcing script's
  for entry in "${programs[@]}"; do
    read -r name args <<< "$entry"
    # shellcheck disable=SC2046  # the medians, one word each
    "$row" "$name" "$args" $(bench_interleaved "$runs" "$measure" "$bin/bench_$name $args" "$@")
  done
}

bench_footer() {
  echo
  echo "median of $1 interleaved runs each; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
}
