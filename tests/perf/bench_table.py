#!/usr/bin/env python3
"""Prints pmalloc_bench's JSON (median aggregates) as markdown tables with ratios."""
import json
import re
import sys

BATCH = 1000  # operations per iteration in alloc_bench.cc


def medians(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        rows[b["run_name"]] = b
    return data.get("context", {}), rows


def ns_per_op(b):
    # items_per_second comes from manual time (batches) or CPU time (pairs).
    return 1e9 / b["items_per_second"]


def alloc_table(rows):
    lines = []
    for kind, title in (("BM_AllocBatch", "alloc-only batches of 1000"),
                        ("BM_AllocFree", "alloc+free pairs")):
        sizes = sorted({int(m.group(1)) for name in rows
                        for m in [re.match(kind + r"<\w+>/(\d+)", name)] if m})
        if not sizes:
            continue
        lines.append(f"\n{title} (ns per operation, median of 5)\n")
        lines.append("| size B | pmalloc | jemalloc | glibc | pmalloc/jemalloc | pmalloc/glibc |")
        lines.append("|---:|---:|---:|---:|---:|---:|")
        for size in sizes:
            def get(alloc):
                for name, b in rows.items():
                    if name.startswith(f"{kind}<{alloc}>/{size}"):
                        return ns_per_op(b)
                return None
            p, j, g = get("PmallocPool"), get("Jemalloc"), get("Glibc")
            if p is None or j is None or g is None:
                continue
            lines.append(f"| {size} | {p:.1f} | {j:.1f} | {g:.1f} | {p / j:.2f} | {p / g:.2f} |")
    return lines


def protect_table(rows):
    lines = []
    pool = [(n, b) for n, b in rows.items() if n.startswith("BM_ProtectPool/")]
    anon = {n: b for n, b in rows.items() if n.startswith("BM_MprotectAnon/")}
    if not pool:
        return lines
    lines.append("\nprotect time, populated pools (ms, median of 5)\n")
    lines.append("| pool MiB | refill | alloc B | areas (= mprotect calls) | pmalloc_protect_pool"
                 " | 1 mprotect, anon | per-page mprotect, anon |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|")
    for name, b in pool:
        mib, refill, size = (int(x) for x in name.split("/")[1:4])
        def ref(per_page):
            for n, r in anon.items():
                if n.startswith(f"BM_MprotectAnon/{mib}/{per_page}/"):
                    return f"{r['real_time']:.3f}"
            return "-"
        refill_s = "64 KiB" if refill == 0 else f"{refill >> 10} MiB"
        lines.append(f"| {mib} | {refill_s} | {size} | {int(b['areas'])} | "
                     f"{b['real_time']:.3f} | {ref(0)} | {ref(1)} |")
    return lines


def density_table(rows):
    lines = []
    dens = [(n, b) for n, b in rows.items() if n.startswith("BM_Density/")]
    if not dens:
        return lines
    lines.append("\ndensity, sizes uniform in [8, 512] B (resident or mapped bytes / requested)\n")
    lines.append("| requested MiB | workload | Rss ratio | Rss minus one area | mapped ratio |"
                 " jemalloc size classes alone |")
    lines.append("|---:|---|---:|---:|---:|---:|")
    for name, b in dens:
        mib, churn = (int(x) for x in name.split("/")[1:3])
        work = "alloc, free half, alloc again" if churn else "alloc only"
        lines.append(f"| {mib} | {work} | {b['rss_ratio']:.3f} | {b['rss_ratio_slack']:.3f} | "
                     f"{b['mapped_ratio']:.3f} | {b['jemalloc_classes']:.3f} |")
    return lines


def main():
    context, rows = medians(sys.argv[1])
    print(f"host: {context.get('num_cpus')} CPUs @ {context.get('mhz_per_cpu')} MHz, "
          f"load avg {context.get('load_avg')}")
    for line in alloc_table(rows) + protect_table(rows) + density_table(rows):
        print(line)


if __name__ == "__main__":
    main()
