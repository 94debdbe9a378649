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


def main():
    context, mp = medians(sys.argv[1])
    _, sh = medians(sys.argv[2])
    print(f"host: {context.get('num_cpus')} CPUs @ {context.get('mhz_per_cpu')} MHz, "
          f"load avg {context.get('load_avg')}; times in ms, median of 5")

    a, b = by_args(mp, "BM_ProtectPool"), by_args(sh, "BM_ProtectPool")
    if a:
        print("\nprotect time, populated pools\n")
        print("| pool MiB | refill | alloc B | areas | protect:mprotect | protect:shared"
              " | shared / mprotect |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for k in a:
            if k not in b:
                continue
            mib, refill, size = k[:3]
            refill_s = "64 KiB" if refill == 0 else f"{refill >> 10} MiB"
            m, s = a[k]["real_time"], b[k]["real_time"]
            print(f"| {mib} | {refill_s} | {size} | {int(a[k]['areas'])} | {m:.3f} | {s:.3f}"
                  f" | {s / m:.1f} |")

    a, b = by_args(mp, "BM_ProtectSparse"), by_args(sh, "BM_ProtectSparse")
    if a:
        print("\nprotect time, sparse pool (one area, every 64th page written)\n")
        print("| area MiB | touched MiB | protect:mprotect | protect:shared | shared / mprotect |")
        print("|---:|---:|---:|---:|---:|")
        for k in a:
            if k in b:
                m, s = a[k]["real_time"], b[k]["real_time"]
                print(f"| {k[0]} | {a[k]['touched_MiB']:.0f} | {m:.3f} | {s:.3f} | {s / m:.1f} |")

    a, b = by_args(mp, "BM_ForkWithProtectedPool"), by_args(sh, "BM_ForkWithProtectedPool")
    if a:
        print("\nfork + child exit + waitpid, process holding one protected, populated pool\n")
        print("| pool MiB | areas | protect:mprotect | protect:shared | shared / mprotect |")
        print("|---:|---|---:|---:|---:|")
        for k in a:
            if k in b:
                mib, one = k[:2]
                areas = "-" if mib == 0 else ("1" if one else f"{mib * 16} (64 KiB)")
                m, s = a[k]["real_time"], b[k]["real_time"]
                print(f"| {mib} | {areas} | {m:.3f} | {s:.3f} | {s / m:.2f} |")

    a, b = by_args(mp, "BM_PoolMemory"), by_args(sh, "BM_PoolMemory")
    if a:
        print("\nphysical memory of a fully written pool (MiB; shmem is system-wide)\n")
        print("| pool MiB | mode | writable: anon | writable: shmem | protected: anon"
              " | protected: shmem |")
        print("|---:|---|---:|---:|---:|---:|")
        for k in a:
            for mode, r in (("mprotect", a[k]), ("shared", b.get(k))):
                if r is None:
                    continue
                print(f"| {k[0]} | {mode} | {r['writable_anon_MiB']:.0f} |"
                      f" {r['writable_shmem_MiB']:.0f} | {r['protected_anon_MiB']:.0f} |"
                      f" {r['protected_shmem_MiB']:.0f} |")

    print("\nsame-run ratios (each mode's run against its own raw references)\n")
    print("| measure | protect:mprotect | protect:shared |")
    print("|---|---:|---:|")
    for mib in (16, 256, 1024):
        cells = []
        for rows in (mp, sh):
            pool = by_args(rows, "BM_ProtectPool").get((mib, 0, 4096))
            raw = by_args(rows, "BM_MprotectAnon").get((mib, 0))
            cells.append("-" if not pool or not raw else
                         f"{pool['real_time']:.2f} ms / {raw['real_time']:.2f} ms ="
                         f" {pool['real_time'] / raw['real_time']:.2f}x")
        print(f"| protect {mib} MiB pool (4 KiB allocs, default refill) vs one raw mprotect"
              f" | {cells[0]} | {cells[1]} |")
    cells = []
    for rows in (mp, sh):
        ld = by_args(rows, "BM_LockdownPools").get((1000,))
        raw = by_args(rows, "BM_MprotectMany").get((1000,))
        cells.append("-" if not ld or not raw else
                     f"{ld['real_time']:.1f} ms / {raw['real_time']:.1f} ms ="
                     f" {ld['real_time'] / raw['real_time']:.2f}x")
    print(f"| pmalloc_lockdown(0) of 1000 one-allocation pools vs 1000 raw mprotects"
          f" | {cells[0]} | {cells[1]} |")
    cells = []
    for rows in (mp, sh):
        t = by_args(rows, "BM_FirstTouch")
        pool, anon = t.get((64, 0)), t.get((64, 1))
        cells.append("-" if not pool or not anon else
                     f"{pool['us_per_page']:.2f} us / {anon['us_per_page']:.2f} us ="
                     f" {pool['us_per_page'] / anon['us_per_page']:.2f}x")
    print(f"| first touch per page, 64 MiB pool area vs anonymous 4 KiB pages"
          f" | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
