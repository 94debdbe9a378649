#!/usr/bin/env python3
"""Prints protect_bench results of two runs (protect:mprotect, protect:shared) side by side."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_table import medians  # noqa: E402


def by_args(rows, prefix):
    """{(args...): benchmark} for the rows named prefix/args.../..."""
    out = {}
    for name, b in rows.items():
        if name.startswith(prefix + "/"):
            parts = name.split("/")[1:]
            out[tuple(int(p) for p in parts if p.isdigit())] = b
    return out


def table(mp, sh, bench, title, header, align, rows):
    """One table of `bench`'s results in both runs: for each argument tuple of the
    protect:mprotect run, rows(args, mprotect_result, shared_result or None) gives its rows
    (lists of cells)."""
    a, b = by_args(mp, bench), by_args(sh, bench)
    if not a:
        return
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(align) + "|")
    for k in a:
        for r in rows(k, a[k], b.get(k)):
            print("| " + " | ".join(r) + " |")


def ratio(mp, sh, bench, key, ref_bench, ref_key, field, unit, digits):
    """The two cells (mprotect, shared) "x unit / ref unit = x/ref" of a same-run ratio."""
    cells = []
    for rows in (mp, sh):
        x = by_args(rows, bench).get(key)
        r = by_args(rows, ref_bench).get(ref_key)
        cells.append("-" if not x or not r else
                     f"{x[field]:.{digits}f} {unit} / {r[field]:.{digits}f} {unit} ="
                     f" {x[field] / r[field]:.2f}x")
    return cells


def main():
    context, mp = medians(sys.argv[1])
    _, sh = medians(sys.argv[2])
    print(f"host: {context.get('num_cpus')} CPUs @ {context.get('mhz_per_cpu')} MHz, "
          f"load avg {context.get('load_avg')}; times in ms, median of 5")
    right = "---:"

    def pool_row(k, a, b):
        if b is None:
            return []
        mib, refill, size = k[:3]
        refill_s = "64 KiB" if refill == 0 else f"{refill >> 10} MiB"
        m, s = a["real_time"], b["real_time"]
        return [[str(mib), refill_s, str(size), str(int(a['areas'])), f"{m:.3f}", f"{s:.3f}",
                 f"{s / m:.1f}"]]
    table(mp, sh, "BM_ProtectPool", "protect time, populated pools",
          ["pool MiB", "refill", "alloc B", "areas", "protect:mprotect", "protect:shared",
           "shared / mprotect"], [right] * 7, pool_row)

    def sparse_row(k, a, b):
        if b is None:
            return []
        m, s = a["real_time"], b["real_time"]
        return [[str(k[0]), f"{a['touched_MiB']:.0f}", f"{m:.3f}", f"{s:.3f}", f"{s / m:.1f}"]]
    table(mp, sh, "BM_ProtectSparse",
          "protect time, sparse pool (one area, every 64th page written)",
          ["area MiB", "touched MiB", "protect:mprotect", "protect:shared", "shared / mprotect"],
          [right] * 5, sparse_row)

    def fork_row(k, a, b):
        if b is None:
            return []
        mib, one = k[:2]
        areas = "-" if mib == 0 else ("1" if one else f"{mib * 16} (64 KiB)")
        m, s = a["real_time"], b["real_time"]
        return [[str(mib), areas, f"{m:.3f}", f"{s:.3f}", f"{s / m:.2f}"]]
    table(mp, sh, "BM_ForkWithProtectedPool",
          "fork + child exit + waitpid, process holding one protected, populated pool",
          ["pool MiB", "areas", "protect:mprotect", "protect:shared", "shared / mprotect"],
          [right, "---", right, right, right], fork_row)

    def memory_rows(k, a, b):
        return [[str(k[0]), mode, f"{r['writable_anon_MiB']:.0f}",
                 f"{r['writable_shmem_MiB']:.0f}", f"{r['protected_anon_MiB']:.0f}",
                 f"{r['protected_shmem_MiB']:.0f}"]
                for mode, r in (("mprotect", a), ("shared", b)) if r is not None]
    table(mp, sh, "BM_PoolMemory",
          "physical memory of a fully written pool (MiB; shmem is system-wide)",
          ["pool MiB", "mode", "writable: anon", "writable: shmem", "protected: anon",
           "protected: shmem"], [right, "---", right, right, right, right], memory_rows)

    print("\nsame-run ratios (each mode's run against its own raw references)\n")
    print("| measure | protect:mprotect | protect:shared |")
    print("|---|---:|---:|")
    for mib in (16, 256, 1024):
        cells = ratio(mp, sh, "BM_ProtectPool", (mib, 0, 4096), "BM_MprotectAnon", (mib, 0),
                      "real_time", "ms", 2)
        print(f"| protect {mib} MiB pool (4 KiB allocs, default refill) vs one raw mprotect"
              f" | {cells[0]} | {cells[1]} |")
    cells = ratio(mp, sh, "BM_LockdownPools", (1000,), "BM_MprotectMany", (1000,), "real_time",
                  "ms", 1)
    print(f"| pmalloc_lockdown(0) of 1000 one-allocation pools vs 1000 raw mprotects"
          f" | {cells[0]} | {cells[1]} |")
    cells = ratio(mp, sh, "BM_FirstTouch", (64, 0), "BM_FirstTouch", (64, 1), "us_per_page", "us",
                  2)
    print(f"| first touch per page, 64 MiB pool area vs anonymous 4 KiB pages"
          f" | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
