#!/usr/bin/env bash
# Builds pmalloc_bench (default preset) and runs it: median of 5 repetitions, then prints
# the tables with pmalloc/jemalloc and pmalloc/glibc ratios.
# Usage: tests/perf/run_bench.sh [extra Google Benchmark flags, e.g. --benchmark_filter=Alloc]
# The raw JSON is kept in build/default/bench.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake --preset default >/dev/null
cmake --build --preset default -j2 --target pmalloc_bench >/dev/null
out=build/default/bench.json
build/default/tests/perf/pmalloc_bench --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true --benchmark_out="$out" \
  --benchmark_out_format=json "$@" >/dev/null
python3 tests/perf/bench_table.py "$out"
