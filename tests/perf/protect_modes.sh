#!/usr/bin/env bash
# Protect time, fork cost and memory of protected pools under PMALLOC_CONF=protect:mprotect
# and protect:shared (the default), side by side: median of 5 repetitions each, then one
# table per benchmark with the shared/mprotect ratio, then the same-run ratios of the goals
# (protect vs one raw mprotect of populated anonymous memory, lockdown of 1000 pools vs
# 1000 raw mprotects, first touch of pool pages vs anonymous pages).
# Usage: tests/perf/protect_modes.sh [extra Google Benchmark flags]
# The raw JSON is kept in build/default/protect_{mprotect,shared}.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake --preset default >/dev/null
cmake --build --preset default -j2 --target pmalloc_bench >/dev/null
filter='BM_(ProtectPool|ProtectSparse|ForkWithProtectedPool|PoolMemory|MprotectAnon|LockdownPools|MprotectMany|FirstTouch)/'
for mode in mprotect shared; do
  PMALLOC_CONF=protect:$mode build/default/tests/perf/pmalloc_bench \
    --benchmark_filter="$filter" --benchmark_repetitions=5 \
    --benchmark_report_aggregates_only=true --benchmark_out="build/default/protect_$mode.json" \
    --benchmark_out_format=json "$@" >/dev/null
done
python3 tests/perf/protect_modes.py build/default/protect_mprotect.json \
  build/default/protect_shared.json
