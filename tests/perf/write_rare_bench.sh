#!/usr/bin/env bash
# Builds write_rare_bench (default preset), runs it (median of 5 repetitions, all cases in one
# run) and prints ns per update with the write-rare / window ratio (docs/write-rare.md).
# Usage: tests/perf/write_rare_bench.sh [extra Google Benchmark flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake --preset default >/dev/null
cmake --build --preset default -j2 --target write_rare_bench >/dev/null
out=build/default/write_rare_bench.json
build/default/tests/perf/write_rare_bench --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true --benchmark_out="$out" \
  --benchmark_out_format=json "$@" >/dev/null
python3 - "$out" <<'PY'
import json, sys
rows = {b["run_name"]: b["real_time"] for b in json.load(open(sys.argv[1]))["benchmarks"]
        if b.get("aggregate_name") == "median"}
print("| update | write-rare ns | window ns | write-rare / window |")
print("|---|---:|---:|---:|")
for label, wr, win in [("memcpy 8 B", "BM_WrMemcpy/8", "BM_WindowMemcpy/8"),
                       ("memcpy 4 KiB", "BM_WrMemcpy/4096", "BM_WindowMemcpy/4096"),
                       ("assign_ptr", "BM_WrAssignPtr", "BM_WindowAssignPtr")]:
    if wr in rows and win in rows:
        print(f"| {label} | {rows[wr]:.0f} | {rows[win]:.0f} | {rows[wr] / rows[win]:.2f} |")
PY
