#!/usr/bin/python3
"""The KPI's cost per pair beside the backend's own, from bench_kpi runs.

    kpi/bench/kpi_table.py slab.json zones.json ...

Each file is one bench_kpi run (--benchmark_out, with repetitions; medians
are used). Prints, per backend, size and pattern, the nanoseconds per
alloc+free pair per thread and the ratios the KPI is held to:

  strict IOMalloc/IOFree  <= 1.5 x own.call + 5 ns
  strict OSMalloc/OSFree  <= 2 x own.call + 5 ns
  xnu IOMalloc/IOFree     <= 1.2 x own.call + 2 ns
  2 threads               per-thread cost <= 1.3 x one thread's

own.call is the backend's own sized pair called as a function (as a kext
calls kalloc); own is the same inlined into the loop. A budget that is missed
is marked with "!". The 2-thread column gives the KPI's per-thread ratio and,
in brackets, the backend's own ratio over the same pattern: where the backend
itself does not scale, neither can a path through it.
"""
import json
import statistics
import sys
from collections import defaultdict

PAIRS = 1000  # pairs per iteration (bench_kpi.cpp)

BUDGETS = {
    "IOMalloc.strict": (1.5, 5.0),
    "OSMalloc.strict": (2.0, 5.0),
    "IOMalloc.xnu": (1.2, 2.0),
    "OSMalloc.xnu": (2.0, 5.0),
}


def load(path):
    """{(case, pattern, size, threads): [ns per pair per thread]} and the backend's name."""
    with open(path) as f:
        doc = json.load(f)
    backend = doc.get("context", {}).get("kmbench_backend", path)
    runs = defaultdict(list)
    for b in doc["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        # pair/<case>/<pattern>/<size>/real_time/threads:<n>
        parts = b["run_name"].split("/") if "run_name" in b else b["name"].split("/")
        case, pattern, size = parts[1], parts[2], int(parts[3])
        threads = int(b.get("threads", 1))
        if "items_per_second" not in b:
            continue
        per_thread_ns = threads * 1e9 / b["items_per_second"]
        runs[(case, pattern, size, threads)].append(per_thread_ns)
    return backend, {k: statistics.median(v) for k, v in runs.items()}


def main(paths):
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    missed = 0
    print("| backend | size | pattern | own | own.call | case | 1 thread | ratio | budget | 2 threads (own) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        try:
            backend, m = load(path)
        except (OSError, ValueError, KeyError, IndexError) as e:
            print(f"kpi_table.py: {path}: {e}", file=sys.stderr)
            return 1
        sizes = sorted({k[2] for k in m})
        for size in sizes:
            for pattern in ("lifo", "batch"):
                own = m.get(("own", pattern, size, 1))
                call = m.get(("own.call", pattern, size, 1))
                call2 = m.get(("own.call", pattern, size, 2))
                if own is None or call is None:
                    continue
                for case, (factor, extra) in BUDGETS.items():
                    one = m.get((case, pattern, size, 1))
                    two = m.get((case, pattern, size, 2))
                    if one is None:
                        continue
                    budget = factor * call + extra
                    mark = "" if one <= budget else " !"
                    missed += one > budget
                    scale = f"{two / one:.2f}x ({call2 / call:.2f}x)" if two and call2 else "-"
                    print(f"| {backend} | {size} | {pattern} | {own:.1f} | {call:.1f} | {case} | {one:.1f}{mark} |"
                          f" {one / call:.2f}x | {budget:.1f} | {scale} |")
    print(f"\n{missed} budgets missed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
